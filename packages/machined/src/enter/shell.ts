import { statSync } from 'node:fs';
import {
  attachTerminal,
  type ChildProcess,
  CLONE,
  closePty,
  closeQuietly,
  openRoot,
  type Pty,
  SdError,
  SpawnProgram,
  spawn,
} from '@sd/sys';
import type { MachineCgroup } from '../registry/cgroup.js';
import { openMachinePty } from './pty.js';
import { lookupMachineUser, type MachineUser } from './users.js';

/**
 * Entering a running machine (DESIGN.md §2): a spawn program that joins the
 * leader's namespaces with setns(pidfd, …) — user (when it has its own),
 * mount, UTS, IPC, network, cgroup — after the parent has put it in the
 * machine's cgroup, becomes the user, takes the pty peer as its controlling
 * terminal and execs. Its PID namespace is the machine's too: spawn()'s
 * pidNamespaceOf switches the main thread's pid-for-children around the clone.
 */

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface MachineTarget {
  name: string;
  leader: number;
  pidfd: number;
  cgroup: MachineCgroup | undefined;
}

export interface ShellRequest {
  /** User name inside the machine ('' = root). */
  user: string;
  /** Absolute path of the program inside the machine ('' = the user's shell, as a login shell). */
  path: string;
  /** argv, starting with argv[0]; empty = [path]. */
  args: string[];
  /** Extra environment (NAME=VALUE); it wins over the defaults. */
  env: string[];
}

/** The namespaces of `pid` that differ from ours, as CLONE_NEW* flags (setns to one's own user ns is EINVAL). */
export function namespacesToJoin(pid: number): number {
  const kinds: Array<[string, number]> = [
    ['user', CLONE.NEWUSER],
    ['mnt', CLONE.NEWNS],
    ['uts', CLONE.NEWUTS],
    ['ipc', CLONE.NEWIPC],
    ['net', CLONE.NEWNET],
    ['cgroup', CLONE.NEWCGROUP],
  ];
  let flags = 0;
  for (const [kind, flag] of kinds) {
    const theirs = statSync(`/proc/${pid}/ns/${kind}`).ino;
    if (flag === CLONE.NEWUSER && theirs === statSync(`/proc/self/ns/${kind}`).ino) continue;
    flags |= flag;
  }
  return flags;
}

export function mergeEnv(defaults: string[], extra: readonly string[]): string[] {
  const map = new Map<string, string>();
  for (const e of [...defaults, ...extra]) {
    const eq = e.indexOf('=');
    if (eq <= 0) throw new SdError('EINVAL', `Invalid environment assignment: ${JSON.stringify(e)}`);
    map.set(e.slice(0, eq), e);
  }
  return [...map.values()];
}

export interface ShellPlan {
  path: string;
  argv: string[];
  envp: string[];
  user: MachineUser;
}

/** What to exec for a request, as systemd's OpenMachineShell decides it. */
export function planShell(req: ShellRequest, user: MachineUser): ShellPlan {
  let path = req.path;
  let argv = req.args;
  if (path === '') {
    path = user.shell || '/bin/sh';
    argv = [`-${path.split('/').pop()}`];
  } else if (!path.startsWith('/')) throw new SdError('EINVAL', `Specified path '${path}' is not absolute`);
  if (argv.length === 0) argv = [path];
  const envp = mergeEnv(
    [
      `PATH=${DEFAULT_PATH}`,
      `HOME=${user.home}`,
      `USER=${user.name}`,
      `LOGNAME=${user.name}`,
      `SHELL=${user.shell}`,
      'TERM=vt220',
      'container=sd-machined',
    ],
    req.env,
  );
  return { path, argv, envp, user };
}

/** The spawn program of a shell: join, become the user, take the terminal, exec. */
export function buildShellProgram(o: {
  pidfd: number;
  nsFlags: number;
  peer: number;
  plan: ShellPlan;
}): SpawnProgram {
  const { user } = o.plan;
  const p = new SpawnProgram().waitForParent();
  p.setns(o.pidfd, o.nsFlags);
  p.setgroups(user.groups, { ignoreErrno: user.groups.length === 0 });
  p.setresgid(user.gid).setresuid(user.uid);
  p.chdir(user.home, { ignoreErrno: true });
  attachTerminal(p, o.peer);
  p.closeOnExecFrom(3).resetSignals();
  p.execve(o.plan.path, o.plan.argv, o.plan.envp);
  return p;
}

/** Runs a program in the machine on `peer`; resolves once it has exec'd. */
export async function spawnInMachine(t: MachineTarget, peer: number, plan: ShellPlan): Promise<ChildProcess> {
  const program = buildShellProgram({ pidfd: t.pidfd, nsFlags: namespacesToJoin(t.leader), peer, plan });
  return spawn(program, {
    pidNamespaceOf: t.pidfd,
    beforeRun: (child) => t.cgroup?.attach(child.pid),
  });
}

/**
 * OpenMachineShell: a pty in the machine and `req` running on it. Returns
 * the master (the caller hands it out and closes it) and the pty's path.
 */
export async function openMachineShell(
  t: MachineTarget,
  req: ShellRequest,
): Promise<{ master: number; path: string; child: ChildProcess }> {
  const root = openRoot(`/proc/${t.leader}/root`);
  let pty: Pty | undefined;
  try {
    const user = lookupMachineUser(root, req.user);
    const plan = planShell(req, user);
    pty = openMachinePty(root);
    const child = await spawnInMachine(t, pty.peer, plan);
    closeQuietly(pty.peer);
    return { master: pty.master, path: pty.path, child };
  } catch (e) {
    if (pty) closePty(pty);
    throw e;
  } finally {
    closeQuietly(root);
  }
}

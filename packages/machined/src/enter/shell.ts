import { statSync } from 'node:fs';
import {
  attachTerminal,
  type ChildProcess,
  CLONE,
  closePty,
  closeQuietly,
  createStubInitMemfd,
  execStubInit,
  type Pty,
  SdError,
  SpawnProgram,
  spawn,
} from '@sd/sys';
import type { MachineCgroup } from '../registry/cgroup.js';
import { confineAfterUser, confineBeforeUser, type LeaderSecurity, leaderSecurity } from './confine.js';
import { openMachinePty } from './pty.js';
import { lookupMachineUser, type MachineUser } from './users.js';

/**
 * Entering a running machine, so that root inside never meets a process
 * more privileged than its own (ARCHITECTURE.md §7; the review found root inside
 * ptrace-attaching a shell that still shared sd-machined's memory). Two
 * stages, as a spawn program cannot branch:
 *
 * 1. The spawned process has a memory of its own (no CLONE_VM) and stays in
 *    the host's PID namespace, so nothing inside can see it: /proc inside
 *    has no entry for it and no pid names it. Parked in the machine's
 *    cgroup by the parent (device policy), it joins every namespace of the
 *    leader in one setns(pidfd) — user (when the machine has one), mount,
 *    UTS, IPC, network, cgroup, and PID, which only changes the PID
 *    namespace of its future children — takes the pty as its controlling
 *    terminal, shrinks its bounding set to the leader's, loads the
 *    container's seccomp filter, becomes the user, drops what the user may
 *    not hold, sets no_new_privs as the leader has it, and execs the stub
 *    init (packages/sys/native) from a sealed memfd.
 * 2. The stub forks: its child is the first process of ours inside the
 *    PID namespace, born with everything above already in place, and execs
 *    the shell. The stub stays outside, forwards signals to it and exits
 *    with its status (exit code, or 128 + signal), so the ChildProcess we
 *    hold tracks the shell.
 *
 * systemd asks the guest's own PID 1 for a transient unit instead, which
 * only works for guests that run systemd; this works for any guest.
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

/** Stage 1 of a shell (see above): join, confine, take the terminal, become the user, exec the stub. */
export function buildShellProgram(o: {
  pidfd: number;
  nsFlags: number;
  peer: number;
  plan: ShellPlan;
  security: LeaderSecurity;
  stubInit: number;
}): SpawnProgram {
  const { user } = o.plan;
  const p = new SpawnProgram().waitForParent();
  p.setns(o.pidfd, o.nsFlags | CLONE.NEWPID);
  attachTerminal(p, o.peer);
  confineBeforeUser(p, o.security);
  p.setgroups(user.groups, { ignoreErrno: user.groups.length === 0 });
  p.setresgid(user.gid).setresuid(user.uid);
  confineAfterUser(p, o.security, user.uid);
  p.chdir(user.home, { ignoreErrno: true });
  p.closeOnExecFrom(3).resetSignals();
  execStubInit(p, o.stubInit, o.plan.path, o.plan.argv, o.plan.envp);
  return p;
}

/** Runs a program in the machine on `peer`; resolves once stage 1 has exec'd the stub. */
export async function spawnInMachine(t: MachineTarget, peer: number, plan: ShellPlan): Promise<ChildProcess> {
  const security = leaderSecurity(t.leader, t.pidfd);
  const stubInit = createStubInitMemfd();
  try {
    const program = buildShellProgram({
      pidfd: t.pidfd,
      nsFlags: namespacesToJoin(t.leader),
      peer,
      plan,
      security,
      stubInit,
    });
    return await spawn(program, {
      shareMemory: false,
      beforeRun: (child) => t.cgroup?.attach(child.pid),
    });
  } finally {
    closeQuietly(stubInit);
  }
}

/**
 * OpenMachineShell: a pty in the machine and `req` running on it. Returns
 * the master (the caller hands it out and closes it) and the pty's path.
 */
export async function openMachineShell(
  t: MachineTarget,
  req: ShellRequest,
): Promise<{ master: number; path: string; child: ChildProcess }> {
  let pty: Pty | undefined;
  try {
    const user = await lookupMachineUser(t, req.user);
    const plan = planShell(req, user);
    pty = await openMachinePty(t);
    const child = await spawnInMachine(t, pty.peer, plan);
    closeQuietly(pty.peer);
    return { master: pty.master, path: pty.path, child };
  } catch (e) {
    if (pty) closePty(pty);
    throw e;
  }
}

import { EventEmitter } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import {
  AT,
  type ChildProcess,
  CLONE,
  closePty,
  closeQuietly,
  type ExitStatus,
  MOUNT_ATTR,
  mountSetattr,
  O,
  open,
  openPty,
  SIG,
  spawn,
} from '@sd/sys';
import { defaultConsoleMode, forwardConsole } from '../console/console.js';
import { NspawnError } from '../errors.js';
import type { Settings } from '../settings/settings.js';
import {
  commandCandidates,
  DEFAULT_PATH,
  findInit,
  hostOsReleasePath,
  lookupUser,
  openTreeRoot,
  rootUser,
} from './exec.js';
import { buildContainerProgram, type ContainerPlan, formatUuid } from './plan.js';
import {
  checkDirectory,
  closeDetached,
  lockTree,
  machineNameOf,
  newUuid,
  openDetachedMounts,
  usrSymlinks,
} from './prepare.js';
import { capabilityMask, defaultSeccompFilter, lastCapability } from './security.js';
import { chooseUidRange, type UidRange } from './userns.js';

export interface ContainerOptions {
  /** Where runtime state goes (locks, staging dirs); systemd's is /run/systemd. */
  runtimeDir?: string;
  /** The payload's stdio in pipe mode; ours by default. */
  stdio?: [number, number, number];
}

export interface ContainerEvents {
  started: [pid: number];
  exit: [status: ExitStatus];
}

const SIGRTMIN_3 = SIG.RTMIN + 3;

/**
 * A running container: one payload (or booted init) in its own namespaces.
 * Emits 'started' and 'exit'; `exited` resolves with the payload's status
 * once everything the container made is gone again.
 */
export class Container extends EventEmitter<ContainerEvents> {
  readonly machine: string;
  readonly uuid: string;
  readonly settings: Settings;
  private child: ChildProcess | undefined;
  private readonly cleanups: Array<() => void> = [];
  private stopRequested = false;

  constructor(settings: Settings, machine: string, uuid: string) {
    super();
    this.settings = settings;
    this.machine = machine;
    this.uuid = uuid;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Asks the payload to stop: SIGRTMIN+3 (halt) for a booted init, --kill-signal or SIGTERM otherwise. */
  stop(): void {
    this.stopRequested = true;
    const sig = this.settings.killSignal ?? (this.settings.boot ? SIGRTMIN_3 : SIG.TERM);
    this.child?.kill(sig);
  }

  /** Kills the payload outright. */
  kill(signal: number = SIG.KILL): void {
    this.child?.kill(signal);
  }

  /** @internal */
  addCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** @internal */
  setChild(child: ChildProcess | undefined): void {
    this.child = child;
  }

  get stopping(): boolean {
    return this.stopRequested;
  }

  /** Undoes everything in reverse order; safe to call twice. */
  cleanup(): void {
    while (this.cleanups.length) {
      try {
        this.cleanups.pop()!();
      } catch {}
    }
  }
}

function writeIdMaps(pid: number, range: UidRange): void {
  const map = `0 ${range.shift} ${range.range}\n`;
  writeFileSync(`/proc/${pid}/uid_map`, map);
  writeFileSync(`/proc/${pid}/setgroups`, 'allow\n');
  writeFileSync(`/proc/${pid}/gid_map`, map);
}

/**
 * Sets up and starts a container; resolves once its payload has exec'd.
 * Await `run()` for the whole life cycle instead.
 */
export async function startContainer(
  settings: Settings,
  options: ContainerOptions = {},
): Promise<{ container: Container; exited: Promise<ExitStatus> }> {
  const tree = checkDirectory(settings);
  const machine = machineNameOf(settings);
  const uuid = settings.uuid ?? newUuid();
  const container = new Container(settings, machine, uuid);
  const runtimeDir = options.runtimeDir ?? '/run/sd-nspawn';
  try {
    const sharedLock = settings.readOnly || settings.volatile !== 'no';
    const lockFd = lockTree(tree, sharedLock);
    container.addCleanup(() => closeQuietly(lockFd));

    mkdirSync(runtimeDir, { recursive: true, mode: 0o755 });
    const staging = mkdtempSync(`${runtimeDir}/${machine}.`);
    // Reachable for the container's root, which may be an unprivileged uid here.
    chmodSync(staging, 0o755);
    container.addCleanup(() => rmSync(staging, { recursive: true, force: true }));
    mkdirSync(`${staging}/root`);

    const uids = chooseUidRange(settings.privateUsers, machine, runtimeDir);
    if (uids) container.addCleanup(() => uids.release());

    const rootFd = openTreeRoot(tree);
    container.addCleanup(() => closeQuietly(rootFd));
    const user = settings.user !== undefined ? lookupUser(rootFd, settings.user) : rootUser(rootFd);

    const consoleMode = defaultConsoleMode(settings.console);
    const pty = consoleMode === 'pipe' ? undefined : openPty();
    if (pty) container.addCleanup(() => closePty(pty));

    const plan = planFor(settings, {
      tree,
      staging: `${staging}/root`,
      machine,
      uuid,
      rootFd,
      user,
      userNamespace: !!uids,
    });
    const mounts = openDetachedMounts({
      tree,
      volatile: settings.volatile,
      readOnly: settings.readOnly,
      osRelease: hostOsReleasePath(),
      consolePeer: pty?.path,
      bindSys: !!uids && !settings.privateNetwork,
    });
    plan.mounts = mounts;

    let cloneFlags = CLONE.NEWNS | CLONE.NEWPID | CLONE.NEWUTS | CLONE.NEWIPC | CLONE.NEWCGROUP;
    if (uids) cloneFlags |= CLONE.NEWUSER;
    if (settings.privateNetwork) cloneFlags |= CLONE.NEWNET;

    const program = buildContainerProgram(plan);
    let child: ChildProcess;
    try {
      child = await spawn(program, {
        cloneFlags,
        beforeRun: (c) => {
          if (!uids) return;
          writeIdMaps(c.pid, uids);
          // The tree's files keep their owners on disk: the container sees them
          // through an idmapped mount of its own user namespace.
          if (uids.shift !== 0) {
            const ns = open(`/proc/${c.pid}/ns/user`, O.RDONLY);
            try {
              mountSetattr(mounts.root, '', AT.EMPTY_PATH | AT.RECURSIVE, {
                set: MOUNT_ATTR.IDMAP,
                usernsFd: ns,
              });
            } catch (e) {
              throw new NspawnError(
                'EOPNOTSUPP',
                `Failed to make an idmapped mount of ${tree} for the user namespace (the file system may not support idmapped mounts)`,
                { cause: e },
              );
            } finally {
              closeQuietly(ns);
            }
          }
        },
      });
    } finally {
      closeDetached(mounts);
    }
    container.setChild(child);
    if (pty && consoleMode !== 'pipe') {
      const forwarder = forwardConsole({ master: pty.master, mode: consoleMode, onEscape: () => container.kill() });
      container.addCleanup(() => forwarder.close());
    }
    container.emit('started', child.pid);
    const exited = child.exited.then((status) => {
      container.cleanup();
      container.emit('exit', status);
      return status;
    });
    return { container, exited };
  } catch (e) {
    container.cleanup();
    throw e;
  }
}

interface PlanInputs {
  tree: string;
  staging: string;
  machine: string;
  uuid: string;
  rootFd: number;
  user: ReturnType<typeof rootUser>;
  userNamespace: boolean;
}

function planFor(settings: Settings, i: PlanInputs): ContainerPlan {
  const { user } = i;
  let paths: string[];
  let argv: string[];
  if (settings.boot) {
    const init = findInit(i.rootFd);
    paths = [init];
    argv = [init, ...settings.parameters];
  } else if (settings.parameters.length) {
    paths = commandCandidates(settings.parameters[0]!);
    argv = [...settings.parameters];
  } else {
    // No command: the user's login shell, as systemd-nspawn does.
    const shell = user.shell || '/bin/sh';
    paths = [shell, '/bin/bash', '/bin/sh'];
    argv = [`-${shell.split('/').pop()}`];
  }
  const term = process.env.TERM && process.stdout.isTTY ? process.env.TERM : 'vt220';
  const env = [
    `PATH=${DEFAULT_PATH}`,
    'container=systemd-nspawn',
    `container_uuid=${formatUuid(i.uuid)}`,
    `TERM=${term}`,
    `HOME=${user.home}`,
    `USER=${user.name}`,
    `LOGNAME=${user.name}`,
    `SHELL=${user.shell}`,
    ...settings.environment,
  ];
  return {
    staging: i.staging,
    volatile: settings.volatile,
    usrSymlinks: settings.volatile === 'yes' ? usrSymlinks(i.tree) : [],
    mounts: { root: -1, devices: {} },
    userNamespace: i.userNamespace,
    networkNamespace: settings.privateNetwork,
    cgroupNamespace: true,
    hostname: settings.hostname ?? i.machine,
    containerUuid: i.uuid,
    exec: { paths, argv, env },
    workingDirectory: settings.chdir ?? (settings.boot ? '/' : user.home),
    workingDirectoryRequired: settings.chdir !== undefined,
    uid: user.uid,
    gid: user.gid,
    groups: user.groups,
    consoleAsStdio: defaultConsoleMode(settings.console) !== 'pipe',
    keepCapabilities: capabilityMask(settings),
    lastCap: lastCapability(),
    noNewPrivileges: settings.noNewPrivileges,
    seccomp: defaultSeccompFilter(settings),
  };
}

/** Runs a container to its end; resolves with the payload's exit status. */
export async function runContainer(settings: Settings, options: ContainerOptions = {}): Promise<ExitStatus> {
  for (;;) {
    const { container, exited } = await startContainer(settings, options);
    const onTerm = () => container.stop();
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onTerm);
    try {
      const status = await exited;
      // A booted guest that rebooted: its init died of SIGHUP in its pid namespace.
      if (settings.boot && status.signal === SIG.HUP && !container.stopping) continue;
      if (settings.boot && status.signal === SIG.INT) return { ...status, code: 0, signal: null };
      return status;
    } finally {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onTerm);
    }
  }
}

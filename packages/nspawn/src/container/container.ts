import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  AT,
  type ChildProcess,
  CLONE,
  type ContainerNamespaces,
  closePty,
  closeQuietly,
  createContainerNamespaces,
  createStubInitMemfd,
  type ExitStatus,
  fchownat,
  getWindowSize,
  isatty,
  O,
  open,
  openPty,
  SIG,
  setWindowSize,
  spawn,
} from '@sd/sys';
import { ContainerScope } from '../cgroup/scope.js';
import { defaultConsoleMode, forwardConsole } from '../console/console.js';
import { NspawnError } from '../errors.js';
import { extras } from '../extras-load.js';
import { checkNetworkSettings, openNetnsPath } from '../network/check.js';
import { beginContainerNetwork } from '../network/pending.js';
import type { NotifyMessage } from '../notify/notify.js';
import { registerMachine } from '../register/register.js';
import { applySettingsFile } from '../settings/load.js';
import { hasPrivateNetwork, needsLinks } from '../settings/network.js';
import type { Settings } from '../settings/settings.js';
import { createFromTemplate, prepareEphemeral } from './ephemeral.js';
import { prepareEtcFiles } from './etc-files.js';
import { hostOsReleasePath, lookupUser, openTreeRoot, rootUser } from './exec.js';
import { Container, type ContainerOptions, describeExit } from './handle.js';
import { idmapMounts, idmapOverlayLayers, idmapOwnership } from './idmap.js';
import { locateImage } from './locate.js';
import { buildContainerProgram, buildProcProgram } from './plan.js';
import { planFor } from './plan-for.js';
import {
  checkDirectory,
  closeDetached,
  createNotifySocket,
  lockTree,
  machineNameOf,
  newUuid,
  openDetachedMounts,
  prepareCustomMounts,
} from './prepare.js';
import { deviceRules } from './security.js';
import { chooseUidRange } from './userns.js';

export { Container, type ContainerEvents, type ContainerOptions } from './handle.js';

/** Mounts the container's /proc for its init `pid` (see buildProcProgram). */
async function mountProc(pid: number, networkNamespace: boolean, briefWaitMs: number): Promise<void> {
  const mntFd = open(`/proc/${pid}/ns/mnt`, O.RDONLY | O.CLOEXEC);
  try {
    // Our memory is shared: the mount namespace it joins holds only the
    // waiting init, no code of the container yet (and it exits before the init goes on).
    const child = await spawn(buildProcProgram({ initPid: pid, mntFd, networkNamespace }), {
      joinsOwnSetup: true,
      briefWaitMs,
    });
    const st = await child.exitedSoon(briefWaitMs);
    if (st.code !== 0)
      throw new NspawnError('ESPAWN', `Failed to mount /proc for the container (${describeExit(st)})`);
  } finally {
    closeQuietly(mntFd);
  }
}

/** The tty group's gid, as systemd and Debian number it. */
const TTY_GID = 5;

/**
 * Sets up and starts a container; resolves once its payload has exec'd.
 * Await `run()` for the whole life cycle instead.
 */
export async function startContainer(
  requested: Settings,
  options: ContainerOptions = {},
): Promise<{ container: Container; exited: Promise<ExitStatus> }> {
  const given = locateImage(requested, options.imageSearchPath);
  const machine = machineNameOf(given);
  const applied = applySettingsFile(given, options.explicit ?? new Set(), machine, options.settingsPaths);
  for (const n of applied.notices) options.logger?.warn(n);
  let settings = applied.settings;
  if (settings.privateUsers.mode !== 'no' && !kernelAtLeast(6, 15))
    throw new NspawnError(
      'EOPNOTSUPP',
      `User namespaces (sd-nspawn's default) need Linux 6.15 or later for proc's pidns= mount option; this is ${kernelRelease()}. Use --private-users=no to run without one (no security boundary)`,
    );
  if (settings.privateUsersOwnership === 'chown')
    throw new NspawnError(
      'EOPNOTSUPP',
      "--private-users-ownership=chown is not supported: sd-nspawn never rewrites a tree's owners; 'map' (idmapped mounts, the default with 'auto') keeps them on disk and shows them shifted",
    );
  const runtimeDir = options.runtimeDir ?? '/run/sd-nspawn';
  // Before anything is made: an option we cannot honour is an error, never the host's network.
  await checkNetworkSettings(settings);
  const privateNetwork = hasPrivateNetwork(settings);
  let netnsPathFd: number | undefined;
  if (settings.networkNamespacePath !== undefined) {
    netnsPathFd = openNetnsPath(settings.networkNamespacePath);
  }
  if (settings.template !== undefined && settings.directory !== undefined)
    await createFromTemplate(resolve(settings.directory), settings.template);
  // --image: the image's mounted root stands in for --directory's tree.
  const image =
    settings.image !== undefined ? extras().mountContainerImage(settings, runtimeDir, machine) : undefined;
  let tree = image?.dir ?? checkDirectory(settings);
  const uuid = settings.uuid ?? newUuid();
  const container = new Container(settings, machine, uuid);
  container.addCleanup(() => closeQuietly(netnsPathFd));
  if (image) container.addCleanup(image.release);
  try {
    if (settings.ephemeral) {
      if (settings.volatile !== 'no')
        throw new NspawnError('EINVAL', '--ephemeral and --volatile= may not be combined');
      const e = prepareEphemeral(tree);
      if (e.kind === 'snapshot') {
        // Removed last: after the lock on the snapshot is gone.
        container.addCleanup(e.remove);
        const originalLock = lockTree(tree, true);
        container.addCleanup(() => closeQuietly(originalLock));
        tree = e.directory;
      } else settings = { ...settings, volatile: 'overlay' };
    }
    const sharedLock = settings.readOnly || settings.volatile !== 'no';
    const lockFd = lockTree(tree, sharedLock);
    container.addCleanup(() => closeQuietly(lockFd));

    const { notify, remove: removeNotify } = createNotifySocket(runtimeDir, machine);
    container.addCleanup(removeNotify);
    const scope = new ContainerScope(machine);
    await scope.create();
    container.addCleanup(() => scope.destroy());
    scope.restrictDevices(deviceRules(settings));
    // The child joins the scope at its clone, not moved by pid later (ContainerScope.openJoin).
    const join = scope.openJoin();
    let joinOpen = true;
    const closeJoin = () => {
      if (joinOpen) closeQuietly(join.cgroupFd, ...join.tasksFds.map((t) => t.fd));
      joinOpen = false;
    };
    container.addCleanup(closeJoin);

    const uids = chooseUidRange(settings.privateUsers, machine, runtimeDir);
    if (uids) container.addCleanup(() => uids.release());
    // The user namespace and those it owns exist before the container: the
    // child sets up its mounts outside it and joins it afterwards (plan.ts).
    let ns: ContainerNamespaces | undefined;
    if (uids) {
      const map = [{ inside: 0, outside: uids.shift, count: uids.range }];
      ns = await createContainerNamespaces(map, map, {
        network: privateNetwork && netnsPathFd === undefined,
      });
      container.addCleanup(() => ns?.close());
    }

    const rootFd = openTreeRoot(tree);
    container.addCleanup(() => closeQuietly(rootFd));
    const user = settings.user !== undefined ? lookupUser(rootFd, settings.user) : rootUser(rootFd);

    const consoleMode = defaultConsoleMode(settings.console);
    const pty = consoleMode === 'pipe' ? undefined : openPty();
    if (pty) {
      container.addCleanup(() => closePty(pty));
      // The console is the host devpts' pty, owned by the host's root: under -U the container's root
      // is another uid and could not open it. Give it to the container's root and tty group.
      if (uids && uids.shift !== 0) fchownat(pty.peer, '', uids.shift, uids.shift + TTY_GID, AT.EMPTY_PATH);
      // The size before the payload runs: it may ask for it at once.
      if (isatty(1)) setWindowSize(pty.master, getWindowSize(1));
    }

    // --as-pid2: the stub init, exec'd from a sealed memfd kept open until the child has exec'd.
    let stubInit = settings.asPid2 ? createStubInitMemfd() : undefined;
    container.addCleanup(() => closeQuietly(stubInit));

    const plan = planFor(settings, {
      stdio: options.stdio,
      tree,
      staging: runtimeDir,
      machine,
      uuid,
      rootFd,
      user,
      userNamespace: !!uids,
      stubInit,
    });
    // Custom mounts are checked (and refused) before anything is written into the tree.
    const custom = prepareCustomMounts(settings, rootFd);
    container.addCleanup(custom.remove);
    plan.custom = custom.custom;
    plan.cgroupTasks = join.tasksFds;
    const etc = prepareEtcFiles(settings, rootFd);
    // Undone when the start fails; kept (commit below) once the payload runs.
    container.addCleanup(() => etc.changes.undo());
    for (const n of etc.notices) options.logger?.warn(n);
    const mounts = openDetachedMounts({
      resolvConf: etc.resolvConfBind,
      localtime: etc.localtimeBind,
      tree,
      rootFd,
      volatile: settings.volatile,
      readOnly: settings.readOnly,
      osRelease: hostOsReleasePath(),
      notifySocket: notify.path,
      consolePeer: pty?.path,
      bindSys: !!uids && !privateNetwork,
    });
    plan.mounts = mounts;
    const layerFds: number[] = [];
    if (uids && ns) {
      plan.namespaces = { user: ns.user, uts: ns.uts, ipc: ns.ipc, rootUid: uids.shift };
      // The tree's files keep their owners on disk: the container sees them
      // through an idmapped mount of its own user namespace.
      if (uids.shift !== 0 && idmapOwnership(settings.privateUsersOwnership, rootFd, uids.shift)) {
        idmapMounts(ns.user, tree, mounts.root, custom);
        layerFds.push(...idmapOverlayLayers(ns.user, custom.custom));
      }
    }

    // No CLONE_NEWCGROUP: the program unshares it once it is in its scope.
    // With a user namespace the PID, UTS, IPC and network namespaces are
    // those it owns, made already; the mount namespace alone is new here.
    let cloneFlags = CLONE.NEWNS;
    if (!ns) cloneFlags |= CLONE.NEWPID | CLONE.NEWUTS | CLONE.NEWIPC | (privateNetwork ? CLONE.NEWNET : 0);

    const program = buildContainerProgram(plan);
    // The payload's pid, once beforeRun knows it; its notifications are read from 'started' on.
    let payloadPid: number | undefined;
    // The console is forwarded from while the child mounts the tree (afterClone), on this CPU.
    const forwardTheConsole = () => {
      if (!pty || consoleMode === 'pipe') return;
      const forwarder = forwardConsole({
        master: pty.master,
        mode: consoleMode,
        onEscape: () => container.kill(),
      });
      container.addCleanup(() => forwarder.close());
    };
    let child: ChildProcess;
    // Host-side links of the container, for RegisterMachineWithNetwork.
    let netif: number[] = [];
    const netOptions = { runtimeDir, logger: options.logger };
    // A user namespace's network namespace exists already: the links are made while the child mounts.
    let network =
      needsLinks(settings) && ns?.net !== undefined
        ? beginContainerNetwork(settings, machine, ns.net, netOptions)
        : undefined;
    if (network) container.addCleanup(network.cleanup);
    // Blocking briefly for the child's answers only while no network setup runs beside it.
    const briefWaitMs = network ? 0 : (options.briefWaitMs ?? 0);
    try {
      child = await spawn(program, {
        cloneFlags,
        briefWaitMs,
        cgroupFd: join.cgroupFd,
        netNamespaceOf: ns?.net ?? netnsPathFd,
        // While the child mounts the container's tree: what needs no answer from it.
        afterClone: () => {
          if (uids) scope.delegate(uids.shift);
          forwardTheConsole();
        },
        beforeRun: async (c) => {
          payloadPid = c.pid;
          if (needsLinks(settings) && !network) {
            network = beginContainerNetwork(settings, machine, c, netOptions);
            container.addCleanup(network.cleanup);
          }
          // c is the init, forked in the container's PID namespace, waiting in the setup's mount namespace.
          if (ns) await mountProc(c.pid, plan.networkNamespace, briefWaitMs);
          // Links, addresses and nftables rules are in place before the payload's first packet.
          if (network) netif = (await network.ready()).hostInterfaces;
        },
      });
    } finally {
      closeJoin();
      closeDetached(mounts);
      custom.close();
      closeQuietly(...layerFds);
      // The child holds the namespaces now (or is gone).
      ns?.close();
      closeQuietly(stubInit);
      stubInit = undefined;
    }
    etc.changes.commit();
    container.setChild(child);
    if (settings.register) {
      // machined over D-Bus; no bus or no machined is a warning, not an error.
      const reg = await registerMachine(
        { machine, uuid, leader: child.pid, rootDirectory: tree, netif },
        { logger: options.logger },
      );
      if (reg) container.addCleanup(() => reg.unregister());
    }
    container.emit('started', child.pid);
    const fromPayload = () => payloadPid;
    const listener = { onMessage: (m: NotifyMessage) => container.handleNotify(m.fields) };
    // A run that nothing else needs the event loop for (sd-nspawn's, with no console to
    // forward) first waits on this thread for a payload that ends at once, as /bin/true does,
    // serving its notify socket meanwhile: such a run never starts the poller (its pool threads).
    // One turn of the loop later, so that the caller has taken the container (its listeners,
    // its banner) before anything of the payload's is delivered or waited for.
    const brief = briefWaitMs > 0 && !pty;
    const watch = (): Promise<ExitStatus> => {
      if (brief)
        void child.exitedSoon(briefWaitMs, {
          fd: notify.fd,
          onReadable: () => notify.deliver(fromPayload, listener),
        });
      if (!child.exitStatus) notify.listen(fromPayload, listener);
      return child.exited;
    };
    const watched = brief ? new Promise((turn) => setImmediate(turn)).then(watch) : watch();
    const exited = watched.then(async (status) => {
      await container.cleanup();
      container.emit('exit', status);
      return status;
    });
    return { container, exited };
  } catch (e) {
    await container.cleanup();
    throw e;
  }
}

/** Runs a container to its end; resolves with the payload's exit status. */
export async function runContainer(settings: Settings, options: ContainerOptions = {}): Promise<ExitStatus> {
  // Handlers first: a SIGTERM that comes while the container starts must stop
  // it once it runs, not kill us and leave it without its supervisor.
  let current: Container | undefined;
  let stopAsked = false;
  const onTerm = () => {
    stopAsked = true;
    current?.stop();
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onTerm);
  try {
    for (;;) {
      const { container, exited } = await startContainer(settings, options);
      current = container;
      options.onContainer?.(container);
      if (stopAsked) container.stop();
      const status = await exited;
      // A booted guest that rebooted: its init died of SIGHUP in its pid namespace.
      if (settings.boot && status.signal === SIG.HUP && !container.stopping) continue;
      if (settings.boot && status.signal === SIG.INT) return { ...status, code: 0, signal: null };
      return status;
    }
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onTerm);
  }
}

/**
 * uname -r, as node:os's release() reads it, without loading node:os at every start (~0.2 ms).
 * Read as 'utf8' (ASCII here): Node reads that in one call, where another encoding takes
 * its generic path, whose first use costs a start ~0.4 ms.
 */
const kernelRelease = () => readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();

/** Whether the running kernel's version is at least major.minor. */
function kernelAtLeast(major: number, minor: number): boolean {
  // MAJOR.MINOR[.PATCH][-EXTRA]; parseInt stops at the '-'. (No regex: each compiles at first use.)
  const [a = 0, b = 0] = kernelRelease()
    .split('.', 2)
    .map((n) => Number.parseInt(n, 10));
  return a > major || (a === major && b >= minor);
}

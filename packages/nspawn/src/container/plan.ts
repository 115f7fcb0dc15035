import {
  AF,
  AT,
  CLONE,
  Data,
  encodeIfinfomsg,
  encodeNlmsg,
  execStubInit,
  IFF,
  loadFilterStep,
  MNT,
  MOUNT_ATTR,
  MS,
  NETLINK,
  NLM_F,
  O,
  RTM,
  SIG,
  SOCK,
  SpawnProgram,
  type Step,
  sockaddrNl,
} from '@sd/sys';
import type { VolatileMode } from '../settings/settings.js';
import { attachCustomMounts, type CustomMounts, makeOverlays } from './custom-mounts.js';
import {
  assembleRoot,
  attach,
  dev,
  INACCESSIBLE,
  ignore,
  procMounts,
  runHost,
  sys,
  tmp,
  touch,
} from './plan-mounts.js';

export { buildProcProgram, formatUuid } from './plan-mounts.js';

/**
 * The container's setup as a spawn program (ARCHITECTURE.md §2): everything the
 * child does between clone and execve. The parent has already opened every
 * host object the container gets as a detached mount (open_tree), so that
 * after pivot_root all paths resolve inside the container's own tree and a
 * symlink planted there can never point the setup at a host file.
 */

/** Host objects handed to the child as detached-mount fds. */
export interface DetachedMounts {
  /** The tree (or, for volatile=yes, its /usr). */
  root: number;
  /** /dev nodes by name: null, zero, full, random, urandom, tty, net/tun. */
  devices: Record<string, number>;
  /** The console pty's peer, bound on /dev/console. */
  console?: number;
  osRelease?: number;
  notifySocket?: number;
  resolvConf?: number;
  localtime?: number;
  /** The host's /sys, for a user namespace without its own network namespace. */
  sys?: number;
}

export interface ContainerPlan {
  /**
   * Where the root is assembled before pivot_root: the runtime directory,
   * covered in the container's mount namespace alone (a directory of the
   * container's own would cost a start its mkdir and rmdir).
   */
  staging: string;
  volatile: VolatileMode;
  /** Top-level symlinks of the tree into /usr (merged /usr), recreated for volatile=yes. */
  usrSymlinks: Array<{ name: string; target: string }>;
  mounts: DetachedMounts;
  userNamespace: boolean;
  /**
   * With a user namespace: fds of it and of the UTS and IPC namespaces it
   * owns (createContainerNamespaces), and the host uid of the container's
   * root. The mounts are made outside the user namespace, which is joined
   * afterwards, so that they are locked inside (see buildContainerProgram).
   */
  namespaces?: {
    user: number;
    uts: number;
    ipc: number;
    rootUid: number;
    /** Set by buildContainerProgram: the fork of the init. */
    fork?: { step: Step; tid: Data };
  };
  networkNamespace: boolean;
  cgroupNamespace: boolean;
  /**
   * The v1 `tasks` files of the container's scope (ContainerScope.openJoin),
   * to which the child writes "0" first: it joins the scope itself, at once.
   */
  cgroupTasks?: ReadonlyArray<{ fd: number; dir: string }>;
  hostname: string;
  containerUuid: string;
  /**
   * What to run: the paths are tried in order (a $PATH search), with argv and
   * envp. With `stubInit` (--as-pid2: an fd from createStubInitMemfd()) the
   * stub init is exec'd instead and runs paths[0], resolved already, as PID 2.
   */
  exec: { paths: string[]; argv: string[]; env: string[]; stubInit?: number };
  workingDirectory: string;
  /** An explicit --chdir must exist; the default (the user's home) falls back to /. */
  workingDirectoryRequired: boolean;
  uid: number;
  gid: number;
  groups: number[];
  /** Open /dev/console as stdin/stdout/stderr and make it the controlling tty. */
  consoleAsStdio: boolean;
  /** --bind, --tmpfs, --overlay, --inaccessible. */
  custom?: CustomMounts;
  /** Without a console: the fds that become the payload's stdin, stdout and stderr (ours by default). */
  stdio?: [number, number, number];
  /** Capability bounding set mask to keep; the rest is dropped. */
  keepCapabilities: bigint;
  lastCap: number;
  noNewPrivileges: boolean;
  /** Precompiled seccomp filter (sock_filter array) or none. */
  seccomp?: Buffer;
}

const TIOCSCTTY = 0x540e;

export function buildContainerProgram(plan: ContainerPlan): SpawnProgram {
  const p = new SpawnProgram();
  const { mounts } = plan;
  // The container must not outlive a killed sd-nspawn: nothing would supervise or clean up after it.
  p.prctl(1 /* PR_SET_PDEATHSIG */, 9);
  // Into the container's cgroup before anything else; the unified one came with the clone (CLONE_INTO_CGROUP).
  for (const t of plan.cgroupTasks ?? []) p.write(t.fd, '0', { label: `join the cgroup ${t.dir}` });
  const ns = plan.namespaces;
  if (ns) {
    // Before any mount: mqueue shows the IPC namespace of its mounter. (The
    // network namespace is ours from the clone.)
    p.setns(ns.uts, CLONE.NEWUTS).setns(ns.ipc, CLONE.NEWIPC);
    // The setup runs as the host's root, but what it creates belongs to the
    // container's root (tmpfs roots, mount points, through idmapped mounts
    // too, which refuse an unmapped owner): the fs ids are the container's,
    // the capabilities stay (no setuid fix-up of the effective set).
    p.prctl(28 /* PR_SET_SECUREBITS */, 1 << 2 /* SECBIT_NO_SETUID_FIXUP */);
    p.setfsid(ns.rootUid, ns.rootUid);
  } else {
    p.waitForParent();
    // In the container's cgroup already: a cgroup namespace made here has that cgroup as its root.
    if (plan.cgroupNamespace) p.unshare(CLONE.NEWCGROUP);
  }

  // Nothing we mount may propagate back to the host.
  p.mount(null, '/', null, MS.REC | MS.SLAVE);
  assembleRoot(p, plan);

  // proc and sysfs are made while the host's are still visible: in a user
  // namespace the kernel only allows them where a full instance is in view.
  // With a user namespace, proc comes later (buildProcProgram): its PID
  // namespace does not exist yet.
  const proc = ns ? undefined : p.newMount('proc', MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC);
  const sysfs =
    plan.mounts.sys === undefined
      ? p.newMount('sysfs', MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC)
      : undefined;
  const overlays = plan.custom ? makeOverlays(p, plan.custom) : [];

  // The overlay's upper and work directories stay on the staging tmpfs, below the new root.
  const newRoot = plan.volatile === 'overlay' ? `${plan.staging}/root` : plan.staging;
  p.chdir(newRoot).pivotRoot('.', '.').umount('.', MNT.DETACH).chdir('/');

  if (plan.volatile === 'yes') {
    for (const { name, target } of plan.usrSymlinks) p.symlink(target, `/${name}`, ignore);
    p.mkdir('/usr', 0o755, ignore);
    attach(p, mounts.root, '/usr');
    // A stateless system: empty /etc and /var the guest fills from /usr.
    for (const d of ['/etc', '/var', '/root', '/home', '/srv', '/mnt']) p.mkdir(d, 0o755, ignore);
  }
  if (plan.volatile === 'state') {
    p.mount('tmpfs', '/var', 'tmpfs', MS.NOSUID | MS.NODEV | MS.STRICTATIME, 'mode=0755', {
      label: '--volatile=state needs a /var directory in the tree',
    });
  }

  for (const d of ['/proc', '/sys', '/dev', '/run', '/tmp']) p.mkdir(d, 0o755, ignore);
  p.mount('tmpfs', '/run', 'tmpfs', MS.NOSUID | MS.NODEV | MS.STRICTATIME, 'mode=0755');
  // Under a user namespace /tmp is made inside it: the guest may unmount it at shutdown.
  if (!plan.namespaces) tmp(p);

  // An empty, unreadable file bound over the /proc files that leak kernel internals.
  p.close(p.openat(AT.FDCWD, INACCESSIBLE, O.CREAT | O.EXCL | O.WRONLY | O.CLOEXEC | O.NOFOLLOW, 0));
  if (proc) procMounts(p, plan.networkNamespace, proc);
  sys(p, plan, sysfs);
  dev(p, plan);
  runHost(p, plan);

  // Best effort, as in systemd: a tree without /etc, or with a symlink there, keeps its own.
  for (const [fd, path] of [
    [mounts.resolvConf, '/etc/resolv.conf'],
    [mounts.localtime, '/etc/localtime'],
  ] as const) {
    if (fd === undefined) continue;
    touch(p, path, ignore);
    attach(p, fd, path, ignore);
  }

  if (plan.custom) attachCustomMounts(p, plan.custom, overlays, INACCESSIBLE);

  if (ns) {
    enterUserNamespace(p, plan, ns);
    tmp(p);
  }
  p.syscall('unlinkat', p.sys.unlinkat, [AT.FDCWD, INACCESSIBLE, 0]);

  if (plan.cgroupNamespace) {
    p.mount('cgroup2', '/sys/fs/cgroup', 'cgroup2', MS.NOSUID | MS.NODEV | MS.NOEXEC, null, ignore);
  }

  if (plan.networkNamespace) loopbackUp(p);
  p.sethostname(plan.hostname);
  privileges(p, plan);
  if (ns?.fork) p.reportForkedPid(ns.fork.step, ns.fork.tid);
  return p;
}

/**
 * With a user namespace: everything so far was mounted as the host's root in
 * a mount namespace of the host's user namespace. Now we join the container's
 * user namespace and make its PID namespace (owned by it, so that its root
 * may reboot it and mount in it), and fork its init, which waits for the
 * parent to mount /proc here (buildProcProgram), then copies the mount
 * namespace into one its user namespace owns. The kernel locks every mount
 * of such a copy (MNT_LOCKED, and MNT_LOCK_READONLY/NOSUID/NODEV/NOEXEC for
 * the flags each has): root inside can neither umount /proc/sys, /sys, the
 * masked files and the rest of what we set up (EINVAL), nor remount them
 * writable (EPERM), nor mount a new proc (locked mounts hide parts of ours:
 * EPERM) or a writable sysfs. The parent of the fork reports the init's pid
 * and exits (reportForkedPid at the end of the program).
 */
function enterUserNamespace(
  p: SpawnProgram,
  plan: ContainerPlan,
  ns: NonNullable<ContainerPlan['namespaces']>,
): void {
  p.setns(ns.user, CLONE.NEWUSER);
  p.setresgid(0).setresuid(0).setgroups([]);
  // A change of credentials clears the parent-death signal.
  p.prctl(1 /* PR_SET_PDEATHSIG */, 9);
  p.unshare(CLONE.NEWPID);
  const tid = new Data(Buffer.alloc(8), 'forked pid');
  // CLONE_VM: the init shares the memory of this setup process (a copy of ours, which it only
  // reports the pid from and then leaves) until its execve, so the fork copies no page tables.
  const step = p.fork(CLONE.PARENT | CLONE.PARENT_SETTID | CLONE.VM | SIG.CHLD, tid);
  ns.fork = { step, tid };
  // The init: the container must not outlive a killed sd-nspawn. Its parent
  // may be gone before this is armed: then the wait ends in EOF, and the init exits.
  p.prctl(1 /* PR_SET_PDEATHSIG */, 9);
  p.waitForParent({ exitOnEof: true });
  // In the container's cgroup by now: a cgroup namespace made here has it as its root.
  if (plan.cgroupNamespace) p.unshare(CLONE.NEWCGROUP);
  p.unshare(CLONE.NEWNS, { label: 'lock the mounts in a mount namespace of the user namespace' });
}

function privileges(p: SpawnProgram, plan: ContainerPlan): void {
  if (plan.workingDirectoryRequired) p.chdir(plan.workingDirectory);
  else p.chdir(plan.workingDirectory, ignore);
  p.setsid();
  if (plan.consoleAsStdio) {
    const console = p.openat(AT.FDCWD, '/dev/console', O.RDWR | O.NOCTTY);
    p.ioctl(console, TIOCSCTTY, 0);
    p.dup2(console, 0).dup2(console, 1).dup2(console, 2).close(console);
  } else {
    p.stdio(plan.stdio ?? [0, 1, 2]);
  }
  for (let cap = 0; cap <= plan.lastCap; cap++) {
    if (plan.keepCapabilities & (1n << BigInt(cap))) continue;
    p.prctl(24 /* PR_CAPBSET_DROP */, cap, 0, 0, 0, ignore);
  }
  // The filter goes in while we still hold CAP_SYS_ADMIN, so that it needs no
  // no_new_privs (which would break setuid programs in a booted guest); the
  // allow-list has every call the steps below make.
  if (plan.seccomp) loadFilterStep(p, plan.seccomp);
  if (plan.gid !== 0 || plan.groups.length) p.setgroups(plan.groups).setresgid(plan.gid);
  if (plan.uid !== 0) p.setresuid(plan.uid);
  // A change of credentials (the user namespace's root, --user) clears the parent-death signal: arm it again.
  p.prctl(1 /* PR_SET_PDEATHSIG */, 9);
  if (plan.noNewPrivileges) p.prctl(38 /* PR_SET_NO_NEW_PRIVS */, 1);
  p.closeOnExecFrom(3);
  p.resetSignals();
  const { paths, argv, env, stubInit } = plan.exec;
  if (stubInit !== undefined) execStubInit(p, stubInit, paths[0]!, argv, env);
  else
    paths.forEach((path, i) =>
      p.execve(path, argv, env, {
        ignoreErrno: i < paths.length - 1,
        label: `Failed to execute ${paths.length > 1 ? `${argv[0]} (looked in $PATH)` : path}`,
      }),
    );
}

/**
 * Brings `lo` up in the container's own network namespace: one RTM_NEWLINK
 * (ifindex 1, IFF_UP) on a netlink socket; the kernel handles it within the
 * send, so no reply needs to be read.
 */
function loopbackUp(p: SpawnProgram): void {
  const msg = encodeNlmsg({
    type: RTM.NEWLINK,
    flags: NLM_F.REQUEST | NLM_F.ACK,
    payload: encodeIfinfomsg({ index: 1, flags: IFF.UP, change: IFF.UP }),
  });
  const nl = sockaddrNl();
  const fd = p.syscall('socket', p.sys.socket, [AF.NETLINK, SOCK.RAW | O.CLOEXEC, NETLINK.ROUTE], {
    result: true,
  })!;
  p.syscall('sendto', p.sys.sendto, [
    fd,
    new Data(msg, 'RTM_NEWLINK lo up'),
    msg.length,
    0,
    new Data(nl, 'sockaddr_nl'),
    nl.length,
  ]);
  p.close(fd);
}

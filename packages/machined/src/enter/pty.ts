import {
  AF,
  AT,
  CLONE,
  closeQuietly,
  Data,
  encodeCmsgs,
  O,
  open,
  openPtyPeer,
  type Pty,
  poller,
  ptyNumber,
  receivedFds,
  recvmsg,
  rightsCmsg,
  S_IF,
  SdError,
  type Slot,
  SOCK,
  SpawnError,
  SpawnProgram,
  setCapabilities,
  setNonBlocking,
  socketpair,
  syscallNumber,
  unlockPty,
  writeAll,
} from '@sd/sys';
import {
  hasOwnUserNamespace,
  type MachineRef,
  READ_TIMEOUT_MS,
  runAbandonable,
} from '../inspect/read-in-machine.js';
import { leaderSecurity } from './confine.js';

/**
 * A pty that lives in the machine's own devpts. The daemon must not open
 * anything inside a machine on its own thread (a FUSE file system there can
 * stall the lookup), so a helper does it, as the readers do
 * (read-in-machine.ts): outside the machine's PID namespace, in its user and
 * mount namespaces, chrooted at the leader's root, as its root with the
 * leader's capabilities, in its cgroup. It opens /dev/pts/ptmx and reports
 * fstatfs and statx of what it got; only when that is a devpts file system
 * (its f_type is the kernel's, a FUSE server cannot fake it) and the ptmx
 * device 5:2 does the daemon let it pass the fd over (SCM_RIGHTS). Anything
 * else, or no answer in time, and the helper is killed: the daemon never
 * holds, stats or closes a file of the machine that could block.
 */

const DEVPTS_SUPER_MAGIC = 0x1cd1;
const STATFS_SIZE = 120;
const STATX_SIZE = 256;

export function buildPtyProgram(o: {
  pidfd: number;
  rootFd: number;
  userns: boolean;
  capabilities: bigint;
  path: string;
  sock: number;
  /** The fd number the master is placed at before it is sent (the daemon's end of the socket, unused in the child). */
  slot: number;
}): SpawnProgram {
  const p = new SpawnProgram().waitForParent();
  p.setns(o.pidfd, (o.userns ? CLONE.NEWUSER : 0) | CLONE.NEWNS);
  p.syscall('fchdir', p.sys.fchdir, [o.rootFd]);
  p.chroot('.');
  p.setgroups([], { ignoreErrno: true }).setresgid(0).setresuid(0);
  setCapabilities(p, { effective: o.capabilities, permitted: o.capabilities, inheritable: 0n });
  const fd = p.openat(AT.FDCWD, o.path, O.RDWR | O.NOCTTY | O.CLOEXEC, 0, { label: `open ${o.path}` });
  const sfs = new Data(Buffer.alloc(STATFS_SIZE), 'statfs');
  p.syscall('fstatfs', syscallNumber('fstatfs'), [fd, sfs]);
  p.syscall('write', p.sys.write, [o.sock, sfs, STATFS_SIZE]);
  const stx = new Data(Buffer.alloc(STATX_SIZE), 'statx');
  p.syscall('statx', syscallNumber('statx'), [fd, '', AT.EMPTY_PATH, 0x1 /* STATX_TYPE */, stx]);
  p.syscall('write', p.sys.write, [o.sock, stx, STATX_SIZE]);
  // The gate: the daemon answers only when the file is the machine's ptmx.
  p.syscall('read', p.sys.read, [o.sock, new Data(Buffer.alloc(8), 'go'), 1]);
  sendFd(p, fd, o.sock, o.slot);
  p.exit(0);
  return p;
}

/** Steps that pass `fd` over the socket `sock` (SCM_RIGHTS), placed at `slot` first. */
export function sendFd(p: SpawnProgram, fd: Slot, sock: number, slot: number): void {
  p.dup2(fd, slot);
  const byte = new Data(Buffer.of(1), 'byte');
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(1n, 8);
  const iovData = new Data(iov, 'iovec', [{ offset: 0, target: byte }]);
  const control = new Data(encodeCmsgs([rightsCmsg([slot])]), 'SCM_RIGHTS');
  const hdr = Buffer.alloc(56);
  hdr.writeBigUInt64LE(1n, 24);
  hdr.writeBigUInt64LE(BigInt(control.bytes.length), 40);
  const msg = new Data(hdr, 'msghdr', [
    { offset: 16, target: iovData },
    { offset: 32, target: control },
  ]);
  p.syscall('sendmsg', p.sys.sendmsg, [sock, msg, 0x4000 /* MSG_NOSIGNAL */]);
}

/** Opens the machine's ptmx; `path` is the peer's name inside the machine. */
export async function openMachinePty(m: MachineRef, timeoutMs = READ_TIMEOUT_MS): Promise<Pty> {
  let master: number | undefined;
  for (const path of ['/dev/pts/ptmx', '/dev/ptmx']) {
    try {
      master = await openPtmx(m, path, timeoutMs);
      break;
    } catch (e) {
      if (!(e instanceof SpawnError && e.code === 'ENOENT')) throw e;
    }
  }
  if (master === undefined) throw new SdError('ENOENT', 'The machine has no /dev/pts/ptmx');
  try {
    unlockPty(master);
    const number = ptyNumber(master);
    const peer = openPtyPeer(master);
    return { master, peer, number, path: `/dev/pts/${number}` };
  } catch (e) {
    closeQuietly(master);
    throw e;
  }
}

async function openPtmx(m: MachineRef, path: string, timeoutMs: number): Promise<number> {
  const security = leaderSecurity(m.leader, m.pidfd);
  const rootFd = openRoot(m.leader);
  // The helper's end blocks (its read is the gate); ours goes through the poller.
  const [mine, theirs] = socketpair(AF.UNIX, SOCK.SEQPACKET, 0, true);
  setNonBlocking(mine);
  let theirsOpen = true;
  let watching = false;
  const next = async () => {
    for (;;) {
      const msg = recvmsg(mine, { size: STATX_SIZE, controlSize: 64 });
      if (msg) return msg;
      watching = true;
      await poller().readable(mine);
      watching = false;
    }
  };
  const talk = async (): Promise<number> => {
    const sfs = (await next()).data;
    const stx = (await next()).data;
    if (sfs.length < 8 || stx.length < STATX_SIZE)
      throw new SdError('EIO', `Opening ${path} in the machine failed`);
    const type = Number(sfs.readBigInt64LE(0)) >>> 0;
    const mode = stx.readUInt16LE(28);
    const isPtmx =
      (mode & S_IF.MT) === S_IF.CHR && stx.readUInt32LE(128) === 5 && stx.readUInt32LE(132) === 2;
    if (type !== DEVPTS_SUPER_MAGIC || !isPtmx)
      throw new SdError('EBADF', `${path} in the machine is not the ptmx of a devpts file system`);
    writeAll(mine, Buffer.of(1));
    const fds = receivedFds((await next()).control);
    if (fds.length !== 1) {
      closeQuietly(...fds);
      throw new SdError('EIO', `Opening ${path} in the machine passed no fd`);
    }
    return fds[0]!;
  };
  try {
    const program = buildPtyProgram({
      pidfd: m.pidfd,
      rootFd,
      userns: hasOwnUserNamespace(m.leader),
      capabilities: security.capBnd,
      path,
      sock: theirs,
      slot: mine,
    });
    const run = runAbandonable(program, {
      what: `Opening ${path} in the machine`,
      timeoutMs,
      beforeRun: (c) => {
        closeQuietly(theirs);
        theirsOpen = false;
        m.cgroup?.attach(c.pid);
      },
    });
    try {
      const [, fd] = await Promise.all([run, talk()]);
      return fd;
    } catch (e) {
      // The helper's own failure (a step's errno) says more than a reset socket.
      throw (
        (await run.then(
          () => undefined,
          (x: unknown) => x,
        )) ?? e
      );
    }
  } finally {
    if (watching) poller().remove(mine);
    closeQuietly(mine, rootFd);
    if (theirsOpen) closeQuietly(theirs);
  }
}

function openRoot(leader: number): number {
  return open(`/proc/${leader}/root`, O.PATH | O.DIRECTORY | O.CLOEXEC);
}

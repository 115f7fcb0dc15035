import {
  AF,
  CLONE,
  closeQuietly,
  Data,
  encodeCmsgs,
  type IncomingMessage,
  O,
  open,
  poller,
  receivedFds,
  recvmsg,
  rightsCmsg,
  SdError,
  type Slot,
  SOCK,
  SpawnProgram,
  setCapabilities,
  setNonBlocking,
  socketpair,
} from '@sd/sys';
import { hasOwnUserNamespace, type MachineRef, runAbandonable } from '../inspect/read-in-machine.js';
import { leaderSecurity } from './confine.js';

/**
 * Helpers that open something inside a machine and hand the fd over. The
 * daemon must not open anything inside a machine on its own thread (a FUSE
 * file system there can stall the lookup), so a helper does it, as the
 * readers do (read-in-machine.ts): outside the machine's PID namespace, in
 * its user and mount namespaces, chrooted at the leader's root, as its root
 * with the leader's capabilities, in its cgroup. It talks to the daemon over
 * a SEQPACKET socket and passes the fd with SCM_RIGHTS; no answer in time,
 * and the helper is killed: the daemon never waits on the machine's files.
 */

/** What the program of such a helper is built from. */
export interface FdHelperTarget {
  pidfd: number;
  rootFd: number;
  userns: boolean;
  capabilities: bigint;
  /** The helper's end of the socket. */
  sock: number;
  /** The fd number the result is placed at before it is sent (the daemon's end, unused in the child). */
  slot: number;
}

/** The helper's first steps: into the machine, as its root, with the leader's capabilities. */
export function enterMachineAsRoot(t: FdHelperTarget): SpawnProgram {
  const p = new SpawnProgram().waitForParent();
  p.setns(t.pidfd, (t.userns ? CLONE.NEWUSER : 0) | CLONE.NEWNS);
  p.syscall('fchdir', p.sys.fchdir, [t.rootFd]);
  p.chroot('.');
  p.setgroups([], { ignoreErrno: true }).setresgid(0).setresuid(0);
  setCapabilities(p, { effective: t.capabilities, permitted: t.capabilities, inheritable: 0n });
  return p;
}

/** Steps that pass `fd` over the daemon's socket (SCM_RIGHTS). */
export function sendFd(p: SpawnProgram, fd: Slot, t: FdHelperTarget): void {
  p.dup2(fd, t.slot);
  const byte = new Data(Buffer.of(1), 'byte');
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(1n, 8);
  const iovData = new Data(iov, 'iovec', [{ offset: 0, target: byte }]);
  const control = new Data(encodeCmsgs([rightsCmsg([t.slot])]), 'SCM_RIGHTS');
  const hdr = Buffer.alloc(56);
  hdr.writeBigUInt64LE(1n, 24);
  hdr.writeBigUInt64LE(BigInt(control.bytes.length), 40);
  const msg = new Data(hdr, 'msghdr', [
    { offset: 16, target: iovData },
    { offset: 32, target: control },
  ]);
  p.syscall('sendmsg', p.sys.sendmsg, [t.sock, msg, 0x4000 /* MSG_NOSIGNAL */]);
}

/** The one fd a message passed; anything else is closed and an error naming `what`. */
export function onlyFd(msg: IncomingMessage, what: string): number {
  const fds = receivedFds(msg.control);
  if (fds.length !== 1) {
    closeQuietly(...fds);
    throw new SdError('EIO', `${what} passed no fd`);
  }
  return fds[0]!;
}

/**
 * Runs the helper `build` makes for machine `m` and resolves with what
 * `talk` makes of its messages (`next` waits for one through the poller;
 * `mine` is the daemon's end, for answers). The helper's own failure (a
 * step's errno) is reported rather than a reset socket.
 */
export async function runFdHelper<T>(
  m: MachineRef,
  what: string,
  timeoutMs: number,
  build: (t: FdHelperTarget) => SpawnProgram,
  talk: (next: () => Promise<IncomingMessage>, mine: number) => Promise<T>,
): Promise<T> {
  const security = leaderSecurity(m.leader, m.pidfd);
  const rootFd = open(`/proc/${m.leader}/root`, O.PATH | O.DIRECTORY | O.CLOEXEC);
  // The helper's end blocks; ours goes through the poller.
  const [mine, theirs] = socketpair(AF.UNIX, SOCK.SEQPACKET, 0, true);
  setNonBlocking(mine);
  let theirsOpen = true;
  let watching = false;
  const next = async () => {
    for (;;) {
      const msg = recvmsg(mine, { size: 4096, controlSize: 64 });
      if (msg) return msg;
      watching = true;
      await poller().readable(mine);
      watching = false;
    }
  };
  try {
    const program = build({
      pidfd: m.pidfd,
      rootFd,
      userns: hasOwnUserNamespace(m.leader),
      capabilities: security.capBnd,
      sock: theirs,
      slot: mine,
    });
    const run = runAbandonable(program, {
      what,
      timeoutMs,
      beforeRun: (c) => {
        closeQuietly(theirs);
        theirsOpen = false;
        m.cgroup?.attach(c.pid);
      },
    });
    try {
      const [, result] = await Promise.all([run, talk(next, mine)]);
      return result;
    } catch (e) {
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

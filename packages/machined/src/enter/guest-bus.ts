import { Socket } from 'node:net';
import { BusConnection } from '@sd/basic';
import {
  AF,
  CLONE,
  closeQuietly,
  Data,
  O,
  open,
  poller,
  receivedFds,
  recvmsg,
  SdError,
  SOCK,
  SpawnProgram,
  setCapabilities,
  setNonBlocking,
  sockaddrUn,
  socketpair,
  syscallNumber,
} from '@sd/sys';
import {
  hasOwnUserNamespace,
  type MachineRef,
  READ_TIMEOUT_MS,
  runAbandonable,
} from '../inspect/read-in-machine.js';
import { leaderSecurity } from './confine.js';
import { sendFd } from './pty.js';

const GUEST_BUS = '/run/dbus/system_bus_socket';

/**
 * The helper that connects to the machine's system bus as the machine's root:
 * in its user and mount namespaces, chrooted at the leader's root, so the
 * guest's bus sees uid 0 of the machine (from the host's user namespace the
 * daemon's root is nobody there, and a bus refuses it). The connected socket
 * comes back over SCM_RIGHTS; connect() is the only lookup made inside.
 */
export function buildBusConnectProgram(o: {
  pidfd: number;
  rootFd: number;
  userns: boolean;
  capabilities: bigint;
  sock: number;
  slot: number;
}): SpawnProgram {
  const p = new SpawnProgram().waitForParent();
  p.setns(o.pidfd, (o.userns ? CLONE.NEWUSER : 0) | CLONE.NEWNS);
  p.syscall('fchdir', p.sys.fchdir, [o.rootFd]);
  p.chroot('.');
  p.setgroups([], { ignoreErrno: true }).setresgid(0).setresuid(0);
  setCapabilities(p, { effective: o.capabilities, permitted: o.capabilities, inheritable: 0n });
  const fd = p.syscall('socket', syscallNumber('socket'), [AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC, 0], {
    result: true,
  });
  if (!fd) throw new Error('socket step has no result');
  const addr = sockaddrUn(GUEST_BUS);
  p.syscall('connect', syscallNumber('connect'), [fd, new Data(addr, 'sockaddr_un'), addr.length], {
    label: `connect ${GUEST_BUS}`,
  });
  sendFd(p, fd, o.sock, o.slot);
  return p.exit(0);
}

/** A bus connection to the machine's own system bus, authenticated as its root. */
export async function connectGuestBus(
  m: MachineRef,
  timeoutMs = READ_TIMEOUT_MS * 4,
): Promise<BusConnection> {
  const security = leaderSecurity(m.leader, m.pidfd);
  const rootFd = open(`/proc/${m.leader}/root`, O.PATH | O.DIRECTORY | O.CLOEXEC);
  const [mine, theirs] = socketpair(AF.UNIX, SOCK.SEQPACKET, 0, true);
  setNonBlocking(mine);
  let theirsOpen = true;
  let watching = false;
  const receive = async (): Promise<number> => {
    for (;;) {
      const msg = recvmsg(mine, { size: 8, controlSize: 64 });
      if (msg) {
        const fds = receivedFds(msg.control);
        if (fds.length !== 1) {
          closeQuietly(...fds);
          throw new SdError('EIO', "Connecting to the machine's bus passed no fd");
        }
        return fds[0]!;
      }
      watching = true;
      await poller().readable(mine);
      watching = false;
    }
  };
  let fd: number;
  try {
    const program = buildBusConnectProgram({
      pidfd: m.pidfd,
      rootFd,
      userns: hasOwnUserNamespace(m.leader),
      capabilities: security.capBnd,
      sock: theirs,
      slot: mine,
    });
    const run = runAbandonable(program, {
      what: `Connecting to ${GUEST_BUS} in the machine`,
      timeoutMs,
      beforeRun: (c) => {
        closeQuietly(theirs);
        theirsOpen = false;
        m.cgroup?.attach(c.pid);
      },
    });
    try {
      [, fd] = await Promise.all([run, receive()]);
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
  const sock = new Socket({ fd, readable: true, writable: true });
  return BusConnection.fromConnectedSocket(sock, `${GUEST_BUS} of the machine`, timeoutMs);
}

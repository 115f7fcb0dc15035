import { Socket } from 'node:net';
import { BusConnection } from '@sd/basic';
import { AF, Data, SOCK, sockaddrUn, syscallNumber } from '@sd/sys';
import { type MachineRef, READ_TIMEOUT_MS } from '../inspect/read-in-machine.js';
import { enterMachineAsRoot, type FdHelperTarget, onlyFd, runFdHelper, sendFd } from './fd-helper.js';

const GUEST_BUS = '/run/dbus/system_bus_socket';

/**
 * The helper that connects to the machine's system bus as the machine's root
 * (fd-helper.ts), so the guest's bus sees uid 0 of the machine: from the
 * host's user namespace the daemon's root is nobody there, and a bus refuses
 * it. connect() is the only lookup made inside.
 */
export function buildBusConnectProgram(t: FdHelperTarget) {
  const p = enterMachineAsRoot(t);
  const fd = p.syscall('socket', syscallNumber('socket'), [AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC, 0], {
    result: true,
  });
  if (!fd) throw new Error('socket step has no result');
  const addr = sockaddrUn(GUEST_BUS);
  p.syscall('connect', syscallNumber('connect'), [fd, new Data(addr, 'sockaddr_un'), addr.length], {
    label: `connect ${GUEST_BUS}`,
  });
  sendFd(p, fd, t);
  return p.exit(0);
}

/** A bus connection to the machine's own system bus, authenticated as its root. */
export async function connectGuestBus(
  m: MachineRef,
  timeoutMs = READ_TIMEOUT_MS * 4,
): Promise<BusConnection> {
  const what = `Connecting to ${GUEST_BUS} in the machine`;
  const fd = await runFdHelper(m, what, timeoutMs, buildBusConnectProgram, async (next) =>
    onlyFd(await next(), what),
  );
  return BusConnection.fromConnectedSocket(
    new Socket({ fd, readable: true, writable: true }),
    what,
    timeoutMs,
  );
}

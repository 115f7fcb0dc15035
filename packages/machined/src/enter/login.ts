import { closeQuietly, O, openInRoot, openRoot, SdError } from '@sd/sys';
import { connectBus } from '../bus/connect.js';
import { dbus } from '../bus/dbus.js';
import { BusError, DBUS_ERROR } from '../bus/errors.js';
import type { MachineRef } from '../inspect/read-in-machine.js';
import { openMachinePty } from './pty.js';

/**
 * OpenMachineLogin: as systemd does it, a pty in the machine and a getty on
 * it started by the machine's own systemd (container-getty@N.service on its
 * system bus). A guest that does not run systemd has nobody to start a
 * getty: that is a clear NotSupported error (use OpenMachineShell there).
 * The guest's bus socket is opened inside its root (RESOLVE_IN_ROOT) and
 * reached through /proc/self/fd, so a planted link cannot redirect us.
 */
export async function openMachineLogin(
  name: string,
  m: MachineRef,
): Promise<{ master: number; path: string }> {
  const root = openRoot(`/proc/${m.leader}/root`);
  try {
    let booted = false;
    try {
      closeQuietly(openInRoot(root, '/run/systemd/system', O.PATH | O.DIRECTORY));
      booted = true;
    } catch {}
    if (!booted)
      throw new BusError(
        DBUS_ERROR.NotSupported,
        `Machine '${name}' does not run systemd: there is no getty to log in to (use a shell instead)`,
      );
    let sock: number;
    try {
      sock = openInRoot(root, '/run/dbus/system_bus_socket', O.PATH);
    } catch (e) {
      throw new SdError('ENOENT', `Machine '${name}' has no system bus to start a getty on`, { cause: e });
    }
    const pty = await openMachinePty(m);
    try {
      const bus = await connectBus(`unix:path=/proc/self/fd/${sock}`);
      try {
        await bus.call(
          new dbus.Message({
            destination: 'org.freedesktop.systemd1',
            path: '/org/freedesktop/systemd1',
            interface: 'org.freedesktop.systemd1.Manager',
            member: 'StartUnit',
            signature: 'ss',
            body: [`container-getty@${pty.number}.service`, 'replace'],
          }),
        );
      } finally {
        bus.disconnect();
      }
      closeQuietly(pty.peer);
      return { master: pty.master, path: pty.path };
    } catch (e) {
      closeQuietly(pty.master, pty.peer);
      throw e;
    } finally {
      closeQuietly(sock);
    }
  } finally {
    closeQuietly(root);
  }
}

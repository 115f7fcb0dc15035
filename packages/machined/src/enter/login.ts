import { closeQuietly, O, openInRoot, openRoot, SdError } from '@sd/sys';
import { BusError, DBUS_ERROR } from '../bus/errors.js';
import type { MachineRef } from '../inspect/read-in-machine.js';
import { connectGuestBus } from './guest-bus.js';
import { openMachinePty } from './pty.js';

/**
 * OpenMachineLogin: as systemd does it, a pty in the machine and a getty on
 * it started by the machine's own systemd (container-getty@N.service on its
 * system bus). A guest that does not run systemd has nobody to start a
 * getty: that is a clear NotSupported error (use OpenMachineShell there).
 * The guest's bus is reached by a helper inside the machine (guest-bus.ts),
 * so the bus sees the machine's root, and a planted link cannot redirect us.
 */
export async function openMachineLogin(
  name: string,
  m: MachineRef,
): Promise<{ master: number; path: string }> {
  if (!runsSystemd(m))
    throw new BusError(
      DBUS_ERROR.NotSupported,
      `Machine '${name}' does not run systemd: there is no getty to log in to (use a shell instead)`,
    );
  const pty = await openMachinePty(m);
  try {
    const bus = await connectGuestBus(m).catch((e: Error) => {
      throw new SdError('ENOENT', `Machine '${name}' has no system bus to start a getty on: ${e.message}`, {
        cause: e,
      });
    });
    try {
      await bus.call({
        destination: 'org.freedesktop.systemd1',
        path: '/org/freedesktop/systemd1',
        interface: 'org.freedesktop.systemd1.Manager',
        member: 'StartUnit',
        signature: 'ss',
        body: [`container-getty@${pty.number}.service`, 'replace'],
      });
    } finally {
      bus.close();
    }
    closeQuietly(pty.peer);
    return { master: pty.master, path: pty.path };
  } catch (e) {
    closeQuietly(pty.master, pty.peer);
    throw e;
  }
}

/** Whether the machine's root has /run/systemd/system, systemd's mark of a booted system. */
function runsSystemd(m: MachineRef): boolean {
  const root = openRoot(`/proc/${m.leader}/root`);
  try {
    closeQuietly(openInRoot(root, '/run/systemd/system', O.PATH | O.DIRECTORY));
    return true;
  } catch {
    return false;
  } finally {
    closeQuietly(root);
  }
}

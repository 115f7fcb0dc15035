import { BusConnection, busReachable, systemBusAddress } from '@sd/basic';
import { SdError } from '@sd/sys';

/**
 * Registration with machined over D-Bus, as systemd-nspawn does it: the
 * container's scope is ours (cgroup/scope.ts), so the call is
 * RegisterMachine (…WithNetwork when there are host-side links), and
 * UnregisterMachine when the container is gone. nspawn talks to machined
 * only over the bus, never through its code. No bus at all, or no machined
 * on it, is a warning: the container runs unregistered. The calls pass no
 * fds, so @sd/basic's small client makes them: dbus-next's load alone would
 * cost more than the rest of a short sd-nspawn run.
 */

export interface RegisterRequest {
  machine: string;
  /** 32 hex digits (dashes allowed), or '' when there is none. */
  uuid: string;
  leader: number;
  rootDirectory: string;
  /** Host-side interface indices pointing at the container. */
  netif?: number[];
  service?: string;
}

export interface RegisterOptions {
  /** Bus address; $DBUS_SYSTEM_BUS_ADDRESS or the system bus socket by default. */
  busAddress?: string;
  logger?: { warn(message: string): void };
  timeoutMs?: number;
}

export interface Registration {
  objectPath: string;
  /** UnregisterMachine; errors (the machine is already gone) are ignored. */
  unregister(): Promise<void>;
}

const MACHINE1 = 'org.freedesktop.machine1';
/** The leader exited before machined saw it (a short-lived payload): nothing to register. */
const LEADER_GONE = 'org.freedesktop.DBus.Error.UnixProcessIdUnknown';
const NO_SERVICE = new Set([
  'org.freedesktop.DBus.Error.ServiceUnknown',
  'org.freedesktop.DBus.Error.NameHasNoOwner',
]);

const connect = (address: string, timeoutMs: number) => BusConnection.connect(address, timeoutMs);

function call(bus: BusConnection, member: string, signature: string, body: unknown[]): Promise<unknown[]> {
  return bus.call({
    destination: MACHINE1,
    path: '/org/freedesktop/machine1',
    interface: 'org.freedesktop.machine1.Manager',
    member,
    signature,
    body,
  });
}

/**
 * Registers the container. Resolves with the registration, or undefined
 * (after a warning) when there is no bus or no machined; other failures
 * (a machine of that name exists) reject.
 */
export async function registerMachine(
  req: RegisterRequest,
  opts: RegisterOptions = {},
): Promise<Registration | undefined> {
  const address = opts.busAddress ?? systemBusAddress();
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const warn = (m: string) => opts.logger?.warn(m);
  if (!busReachable(address)) {
    warn(`No system bus (${address}): not registering machine ${req.machine} with machined.`);
    return undefined;
  }
  let bus: BusConnection;
  try {
    bus = await connect(address, timeoutMs);
  } catch (e) {
    warn(
      `Cannot connect to the system bus (${(e as Error).message}): not registering machine ${req.machine}.`,
    );
    return undefined;
  }
  try {
    const hex = req.uuid.replaceAll('-', '');
    const id = /^[0-9a-f]{32}$/i.test(hex) ? Buffer.from(hex, 'hex') : Buffer.alloc(0);
    const netif = req.netif ?? [];
    const base = [req.machine, id, req.service ?? 'sd-nspawn', 'container', req.leader, req.rootDirectory];
    const [path] = netif.length
      ? await call(bus, 'RegisterMachineWithNetwork', 'sayssusai', [...base, netif])
      : await call(bus, 'RegisterMachine', 'sayssus', base);
    return {
      objectPath: String(path),
      unregister: async () => {
        try {
          const b = await connect(address, timeoutMs);
          try {
            await call(b, 'UnregisterMachine', 's', [req.machine]);
          } finally {
            b.close();
          }
        } catch {}
      },
    };
  } catch (e) {
    const name = (e as { type?: string }).type;
    if (name === LEADER_GONE) return undefined;
    if (name && NO_SERVICE.has(name)) {
      warn(`machined is not running: not registering machine ${req.machine}.`);
      return undefined;
    }
    throw new SdError('EREGISTER', `Failed to register machine ${req.machine}: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    bus.close();
  }
}

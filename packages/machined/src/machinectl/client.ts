import { BusConnection, dbusNext } from '@sd/basic';
import { SdError } from '@sd/sys';
import { connectBus, systemBusAddress } from '../bus/connect.js';
import type { MessageBus } from '../bus/dbus.js';

/**
 * machinectl's only way to the registry: method calls and property reads
 * on org.freedesktop.machine1 over D-Bus (the system bus, or
 * $DBUS_SYSTEM_BUS_ADDRESS). Error replies become BusCallError with the
 * wire name and the daemon's text. Two connections: @sd/basic's small
 * client (LiteMachine1) for every verb that passes no fds — it loads in a
 * fraction of dbus-next's time — and dbus-next (BusMachine1) for login and
 * shell, whose replies carry a pty fd.
 */

export const BUS_NAME = 'org.freedesktop.machine1';
export const MANAGER_PATH = '/org/freedesktop/machine1';
export const MANAGER_IFACE = 'org.freedesktop.machine1.Manager';
export const MACHINE_IFACE = 'org.freedesktop.machine1.Machine';
export const IMAGE_IFACE = 'org.freedesktop.machine1.Image';
/** sd-machined's own: starting machines from the pool (systemd does that through PID 1). */
export const RUNNER_IFACE = 'io.sd.machine1.Runner';

export class BusCallError extends SdError {
  readonly busName: string;
  constructor(busName: string, message: string, options?: ErrorOptions) {
    super(busName.split('.').pop() ?? 'EBUS', message, options);
    this.busName = busName;
  }
}

/** The calls machinectl makes; a fake implements it in unit tests. */
export interface Machine1 {
  call(path: string, iface: string, member: string, signature: string, body: unknown[]): Promise<unknown[]>;
  getAll(path: string, iface: string): Promise<Record<string, unknown>>;
  close(): void;
}

const unwrap = (v: unknown): unknown =>
  v instanceof dbusNext().Variant ? unwrap(v.value) : Array.isArray(v) ? v.map(unwrap) : v;

const wireError = (e: unknown): unknown => {
  const err = e as { type?: string; text?: string; message?: string };
  return typeof err.type === 'string'
    ? new BusCallError(err.type, err.text ?? err.message ?? err.type, { cause: e })
    : e;
};

/** machine1 through @sd/basic's BusConnection: variants arrive as their values already. */
export class LiteMachine1 implements Machine1 {
  readonly #bus: BusConnection;
  /** Hello's reply: the first call goes out before it (BusConnection.open). */
  readonly #ready: Promise<unknown>;
  private constructor(bus: BusConnection, ready: Promise<unknown>) {
    this.#bus = bus;
    this.#ready = ready;
  }

  static async connect(address = systemBusAddress()): Promise<LiteMachine1> {
    const { conn, ready } = await BusConnection.open(address);
    return new LiteMachine1(conn, ready);
  }

  async call(
    path: string,
    iface: string,
    member: string,
    signature: string,
    body: unknown[],
  ): Promise<unknown[]> {
    const reply = this.#bus.call({ destination: BUS_NAME, path, interface: iface, member, signature, body });
    // Awaited below once the handshake is through; a refused one rejects both.
    reply.catch(() => undefined);
    try {
      await this.#ready;
    } catch (e) {
      // A refused or stalled handshake reads as it did when connect() waited for it.
      const { code = 'ECONNREFUSED', message } = e as SdError;
      throw new SdError(code, `Failed to connect to bus: ${message}`, { cause: e });
    }
    try {
      return await reply;
    } catch (e) {
      throw wireError(e);
    }
  }

  async getAll(path: string, iface: string): Promise<Record<string, unknown>> {
    const [props] = await this.call(path, 'org.freedesktop.DBus.Properties', 'GetAll', 's', [iface]);
    return { ...((props ?? {}) as Record<string, unknown>) };
  }

  close(): void {
    this.#bus.close();
  }
}

export class BusMachine1 implements Machine1 {
  readonly #bus: MessageBus;
  private constructor(bus: MessageBus) {
    this.#bus = bus;
  }

  static async connect(address = systemBusAddress()): Promise<BusMachine1> {
    return new BusMachine1(await connectBus(address));
  }

  async call(
    path: string,
    iface: string,
    member: string,
    signature: string,
    body: unknown[],
  ): Promise<unknown[]> {
    const msg = new (dbusNext().Message)({
      destination: BUS_NAME,
      path,
      interface: iface,
      member,
      signature,
      body,
    });
    try {
      const reply = await this.#bus.call(msg);
      return reply?.body ?? [];
    } catch (e) {
      throw wireError(e);
    }
  }

  async getAll(path: string, iface: string): Promise<Record<string, unknown>> {
    const [props] = await this.call(path, 'org.freedesktop.DBus.Properties', 'GetAll', 's', [iface]);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries((props ?? {}) as Record<string, unknown>)) out[k] = unwrap(v);
    return out;
  }

  close(): void {
    this.#bus.disconnect();
  }
}

/** Manager calls by name, typed loosely: the body of the reply. */
export const manager = (
  m: Machine1,
  member: string,
  signature: string,
  ...body: unknown[]
): Promise<unknown[]> => m.call(MANAGER_PATH, MANAGER_IFACE, member, signature, body);

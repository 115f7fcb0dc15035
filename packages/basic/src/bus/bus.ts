import { existsSync } from 'node:fs';
import { SdError } from '@sd/sys';
import type { MessageBus } from 'dbus-next';

/**
 * The system bus as every sd package reaches it: the address systemd's
 * clients use, and a connection that has said Hello. dbus-next is
 * CommonJS; it is required on first use so that a program that never
 * talks to a bus never loads it.
 */

export type DBus = typeof import('dbus-next');
export type { Message, MessageBus, Variant } from 'dbus-next';

let loaded: DBus | undefined;
export function dbusNext(): DBus {
  // node:module on first use too: loading it loads Node's ESM loader (~0.4 ms of a CLI's start).
  loaded ??= process.getBuiltinModule('node:module').createRequire(import.meta.url)('dbus-next') as DBus;
  return loaded;
}

/** $DBUS_SYSTEM_BUS_ADDRESS, else the system bus socket systemd's clients use. */
export function systemBusAddress(env: NodeJS.ProcessEnv = process.env): string {
  return env.DBUS_SYSTEM_BUS_ADDRESS || 'unix:path=/run/dbus/system_bus_socket';
}

/** Whether the bus can be there at all: a unix:path= socket that exists (other address kinds: try). */
export function busReachable(address: string): boolean {
  // The first address of the list with a unix:path= (not a regex: each compiles at its first use).
  for (const one of address.split(';')) {
    if (!one.startsWith('unix:path=')) continue;
    const path = one.slice('unix:path='.length).split(',', 1)[0];
    if (path) return existsSync(path);
  }
  return true;
}

export interface ConnectOptions {
  address?: string;
  timeoutMs?: number;
  /** Negotiate unix-fd passing (dbus-next does it only over a unix:path= usocket connection). */
  unixFds?: boolean;
}

/**
 * Connects and resolves once the bus has said Hello. Errors name the
 * address; a later connection error is swallowed (a long-lived client must
 * not crash on a bus that goes away: it sees the disconnect on its calls).
 */
export function connectBus(o: ConnectOptions = {}): Promise<MessageBus> {
  const address = o.address ?? systemBusAddress();
  const timeoutMs = o.timeoutMs ?? 10_000;
  const bus = dbusNext().sessionBus({ busAddress: address, negotiateUnixFd: o.unixFds === true } as never);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new SdError('ETIMEDOUT', `Timed out connecting to the bus at ${address}`)),
      timeoutMs,
    );
    const fail = (e: unknown) => {
      clearTimeout(timer);
      bus.off('connect', ok);
      try {
        bus.disconnect();
      } catch {}
      reject(
        e instanceof SdError
          ? e
          : new SdError('ECONNREFUSED', `Cannot connect to the bus at ${address}: ${(e as Error).message}`, {
              cause: e,
            }),
      );
    };
    const ok = () => {
      clearTimeout(timer);
      bus.off('error', fail);
      bus.on('error', () => undefined);
      resolve(bus);
    };
    bus.once('connect', ok);
    bus.once('error', fail);
  });
}

import { SdError } from '@sd/sys';
import { dbus, type MessageBus } from './dbus.js';

/** The system bus address: $DBUS_SYSTEM_BUS_ADDRESS, else systemd's default socket. */
export function systemBusAddress(env: NodeJS.ProcessEnv = process.env): string {
  return env.DBUS_SYSTEM_BUS_ADDRESS || 'unix:path=/run/dbus/system_bus_socket';
}

/**
 * Connects to a bus with unix-fd passing negotiated (dbus-next does that
 * only over a usocket connection, i.e. a unix:path= address) and resolves
 * once the bus has said Hello.
 */
export function connectBus(address: string = systemBusAddress(), timeoutMs = 10_000): Promise<MessageBus> {
  const bus = dbus.sessionBus({ busAddress: address, negotiateUnixFd: true } as never);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new SdError('ETIMEDOUT', `Timed out connecting to ${address}`)),
      timeoutMs,
    );
    const fail = (e: unknown) => {
      clearTimeout(timer);
      bus.off('connect', ok);
      try {
        bus.disconnect();
      } catch {}
      reject(
        e instanceof Error
          ? new SdError('ECONNREFUSED', `Cannot connect to ${address}: ${e.message}`, { cause: e })
          : e,
      );
    };
    const ok = () => {
      clearTimeout(timer);
      bus.off('error', fail);
      resolve(bus);
    };
    bus.once('connect', ok);
    bus.once('error', fail);
  });
}

import { connectBus as connect, systemBusAddress } from '@sd/basic';
import type { MessageBus } from './dbus.js';

export { systemBusAddress };

/** A bus connection with unix-fd passing negotiated (machine1 hands out pty and shell fds). */
export function connectBus(address: string = systemBusAddress(), timeoutMs = 10_000): Promise<MessageBus> {
  return connect({ address, timeoutMs, unixFds: true });
}

import type { ChildProcess } from '@sd/sys';
import { extras } from '../extras-load.js';
import type { Settings } from '../settings/settings.js';
import type { ContainerNetwork, NetworkOptions } from './network.js';

/**
 * The container's network, being set up: made as soon as its network
 * namespace exists (with a user namespace, before the child: the links are
 * made while it sets up its mounts), awaited before the payload may run.
 */
export interface PendingNetwork {
  /** The network once set up; rejects (having undone its part) when setting it up failed. */
  ready(): Promise<ContainerNetwork>;
  /** Undoes it, whenever called: after ready(), or while it is still being set up. */
  cleanup(): Promise<void>;
}

/**
 * Starts setupContainerNetwork() without waiting for it. `target` is the
 * container's init, or an fd of its network namespace (not taken over: the
 * setup opens its own before its first await).
 */
export function beginContainerNetwork(
  settings: Settings,
  machine: string,
  target: ChildProcess | number,
  options: NetworkOptions,
): PendingNetwork {
  const p = extras().setupContainerNetwork(settings, machine, target, options);
  // Seen through ready(); a failure before anyone asks (the spawn failed first) is not unhandled.
  p.catch(() => undefined);
  let cleaned = false;
  return {
    ready: () => p,
    cleanup: async () => {
      if (cleaned) return;
      cleaned = true;
      const net = await p.catch(() => undefined);
      await net?.cleanup();
    },
  };
}

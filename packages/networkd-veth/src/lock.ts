import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { closeQuietly, LOCK, O, open, SdError, tryFlock } from '@sd/sys';

/** Lock files shared by every process that changes container links (sd-nspawn, sd-networkd-veth). */
export const LOCKS = {
  /** Held from picking a pool subnet to putting it on the link. */
  pool: '/run/sd-networkd-veth/pool.lock',
  /** Held while a zone bridge is made and joined, or removed when empty. */
  zones: '/run/sd-networkd-veth/zones.lock',
} as const;

/**
 * Runs `fn` holding an exclusive flock on `path`, waiting for it without
 * blocking the event loop (two callers in one process wait for each other
 * too: each opens the file anew).
 */
export async function withLockFile<T>(path: string, fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  mkdirSync(dirname(path), { recursive: true });
  const fd = open(path, O.RDWR | O.CREAT | O.CLOEXEC, 0o600);
  try {
    const deadline = Date.now() + timeoutMs;
    while (!tryFlock(fd, LOCK.EX, path)) {
      if (Date.now() > deadline) throw new SdError('ETIMEDOUT', `Timed out waiting for the lock ${path}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return await fn();
  } finally {
    closeQuietly(fd);
  }
}

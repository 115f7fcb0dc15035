import { spawnSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';

// Test cleanup that unmounts for real. A lazy `umount -l` would hide the very
// thing the leak check exists to catch (something still holding a mount), so
// a mount that stays busy fails the cleanup, naming the mount and its holders.

const cell = new Int32Array(new SharedArrayBuffer(4));

/** Processes with an fd, cwd or root under `path` (what keeps it busy). */
export function holdersOf(path: string): string[] {
  const out: string[] = [];
  const under = (p: string) => p === path || p.startsWith(`${path}/`);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const links = ['cwd', 'root'].map((l) => `/proc/${pid}/${l}`);
      for (const fd of readdirSync(`/proc/${pid}/fd`)) links.push(`/proc/${pid}/fd/${fd}`);
      if (
        links.some((l) => {
          try {
            return under(readlinkSync(l));
          } catch {
            return false;
          }
        })
      )
        out.push(pid);
    } catch {}
  }
  return out;
}

/**
 * Unmounts `path`; EBUSY is retried for `retryMs` (a dying container may
 * still hold it for a moment), then throws naming the busy mount.
 */
export function unmountOrFail(path: string, retryMs = 2000): void {
  const deadline = Date.now() + retryMs;
  for (;;) {
    const r = spawnSync('umount', [path], { encoding: 'utf8' });
    if (r.status === 0) return;
    if (!/busy/i.test(r.stderr) || Date.now() >= deadline) {
      const holders = holdersOf(path);
      throw new Error(
        `cleanup: ${path} stays mounted: ${r.stderr.trim()}` +
          (holders.length ? ` (held by pid ${holders.join(', ')})` : ''),
      );
    }
    Atomics.wait(cell, 0, 0, 50);
  }
}

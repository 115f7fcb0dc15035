import { statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Where systemd keeps what machined, nspawn and importd share, in one
 * place; every function takes a root so that tests (and a daemon started
 * with --root) can move the whole layout under a temporary directory.
 */

/** Trusted .nspawn settings directories, in lookup order (systemd.nspawn(5)). */
export const NSPAWN_SETTINGS_DIRS = ['/etc/systemd/nspawn', '/run/systemd/nspawn'] as const;

/** The machine image search path, first match wins (machinectl(1), "Files and directories"). */
export const MACHINE_IMAGE_SEARCH_PATH = [
  '/etc/machines',
  '/run/machines',
  '/var/lib/machines',
  '/var/lib/container',
  '/usr/local/lib/machines',
  '/usr/lib/machines',
] as const;

/** Where new images go (machined's PoolPath). */
export const MACHINE_POOL_DIR = '/var/lib/machines';

/** machined's state: one file a machine. */
export const MACHINES_STATE_DIR = '/run/systemd/machines';

export const under = (root: string, paths: readonly string[]): string[] => paths.map((p) => join(root, p));

/** Whether the host runs systemd as PID 1 (sd_booted(): /run/systemd/system is a directory). */
export function systemdBooted(root = '/'): boolean {
  try {
    return statSync(join(root, '/run/systemd/system')).isDirectory();
  } catch {
    return false;
  }
}

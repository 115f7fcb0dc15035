import { readdirSync, renameSync } from 'node:fs';
import { closeQuietly, getRandom, LOCK, O, open, tryFlock, unlinkIfExists } from '@sd/sys';

/**
 * Paths that belong to one running sd-nspawn (its notify socket, an
 * ephemeral snapshot, an image's mount point) and must go when it is
 * killed, which leaves it no chance to clean up. Each has a lock file next
 * to it, made and flock'ed under a temporary name and only then renamed into
 * place, before the path exists: no other start can see it unlocked
 * while its owner lives, and the next start removes what dead owners left.
 */

export interface HeldPath<T = void> {
  path: string;
  /** What `create` returned. */
  made: T;
  /** Removes the lock file and lets go of the lock (after the path is gone). */
  release(): void;
}

export function randomSuffix(): string {
  return getRandom(6).toString('base64url').replaceAll('-', 'x').replaceAll('_', 'x').slice(0, 8);
}

/** Locks `${parent}/${name}.lock`, then makes the path with `create`. */
export function holdNewPath<T = void>(
  parent: string,
  name: string,
  create: (path: string) => T,
): HeldPath<T> {
  const path = `${parent}/${name}`;
  const lock = `${path}.lock`;
  const tmp = `${lock}.${randomSuffix()}.tmp`;
  const fd = open(tmp, O.CREAT | O.EXCL | O.RDWR, 0o600);
  let made: T;
  try {
    tryFlock(fd, LOCK.EX, tmp);
    renameSync(tmp, lock);
    made = create(path);
  } catch (e) {
    unlinkIfExists(tmp);
    unlinkIfExists(lock);
    closeQuietly(fd);
    throw e;
  }
  return {
    path,
    made,
    release: () => {
      unlinkIfExists(lock);
      closeQuietly(fd);
    },
  };
}

/**
 * Removes the paths under `parent` whose lock nobody holds (their
 * sd-nspawn is gone) with `remove`, and their lock files. `matches` gets a
 * path's name.
 */
export function pruneDeadPaths(
  parent: string,
  matches: (name: string) => boolean,
  remove: (path: string) => void,
): string[] {
  const pruned: string[] = [];
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return pruned;
  }
  for (const lockName of names) {
    if (!lockName.endsWith('.lock')) continue;
    const name = lockName.slice(0, -'.lock'.length);
    if (!matches(name)) continue;
    const lock = `${parent}/${lockName}`;
    let fd: number;
    try {
      fd = open(lock, O.RDWR);
    } catch {
      continue;
    }
    try {
      if (!tryFlock(fd, LOCK.EX, lock)) continue;
      try {
        remove(`${parent}/${name}`);
      } catch {
        // Left for a later start; the lock file stays with it.
        continue;
      }
      unlinkIfExists(lock);
      pruned.push(`${parent}/${name}`);
    } finally {
      closeQuietly(fd);
    }
  }
  return pruned;
}

import { fstatSync, mkdirSync, statSync } from 'node:fs';
import { closeQuietly, ERRNO, LOCK, O, open, SyscallError, tryFlock, unlinkIfExists, view } from '@sd/sys';
import { NspawnError } from '../errors.js';
import type { PrivateUsers } from '../settings/settings.js';
import { sha256 } from './sha256.js';

/**
 * UID ranges for --private-users. `pick` starts from a hash of the machine
 * name (stable across runs, so files keep their owners) and takes the first
 * range in systemd's container window that no other container holds; a lock
 * file per range, held while the container runs, makes that exclusive, and
 * is removed when the range is released (as systemd removes its own).
 */

const PICK_MIN = 0x00080000;
const PICK_MAX = 0x6fff0000;
const RANGE = 0x10000;

export interface UidRange {
  shift: number;
  range: number;
  /** Releases the lock on the range. */
  release(): void;
}

export function lockDirectory(runtimeDir: string): string {
  return `${runtimeDir}/nspawn-uid`;
}

/** The lock file of the range starting at host uid `shift`. */
export function rangeLockPath(runtimeDir: string, shift: number): string {
  return `${lockDirectory(runtimeDir)}/${shift.toString(16).padStart(8, '0')}`;
}

/** A range's lock file, never through a link planted in its place: we would lock, and at release keep, its target. */
function openLockFile(path: string): number {
  try {
    return open(path, O.CREAT | O.RDWR | O.NOFOLLOW | O.CLOEXEC, 0o600);
  } catch (e) {
    if (e instanceof SyscallError && e.errno === ERRNO.ELOOP)
      throw new NspawnError(
        'ELOOP',
        `${e.message}: a symbolic link stands where this UID range's lock file belongs; refusing to follow it`,
        { cause: e },
      );
    throw e;
  }
}

/**
 * Locks the file of a range; its release removes the file, then lets go of
 * the lock. A holder may release between our open and our flock: we then
 * hold a file no longer there, which locks nothing (the next taker makes a
 * new one), so a lock counts only on the file the name still shows.
 */
function tryLock(runtimeDir: string, shift: number): (() => void) | undefined {
  const path = rangeLockPath(runtimeDir, shift);
  for (let tries = 0; tries < 3; tries++) {
    const fd = openLockFile(path);
    if (!tryFlock(fd, LOCK.EX, path)) {
      closeQuietly(fd);
      return undefined;
    }
    if (sameFile(fd, path)) {
      let held = true;
      // Once only: a second removal could take a file another holder made since.
      return () => {
        if (held) {
          unlinkIfExists(path);
          closeQuietly(fd);
        }
        held = false;
      };
    }
    closeQuietly(fd);
  }
  return undefined;
}

function sameFile(fd: number, path: string): boolean {
  try {
    const held = fstatSync(fd);
    const named = statSync(path);
    return held.ino === named.ino && held.dev === named.dev;
  } catch {
    return false;
  }
}

export function candidateShift(machine: string, attempt: number): number {
  const h = sha256(Buffer.from(`${machine}\0${attempt}`));
  const slots = (PICK_MAX - PICK_MIN) / RANGE;
  return PICK_MIN + (view(h).getUint32(0, true) % slots) * RANGE;
}

/** Chooses (and locks) the uid range of a container; undefined without a user namespace. */
export function chooseUidRange(
  users: PrivateUsers,
  machine: string,
  runtimeDir: string,
): UidRange | undefined {
  if (users.mode === 'no') return undefined;
  if (users.mode === 'identity') return { shift: 0, range: users.range, release: () => {} };
  mkdirSync(lockDirectory(runtimeDir), { recursive: true, mode: 0o755 });
  if (users.mode === 'fixed') {
    const shift = users.shift ?? 0;
    const release = tryLock(runtimeDir, shift);
    if (release === undefined)
      throw new NspawnError('EBUSY', `UID range ${shift}:${users.range} is in use by another container`);
    return { shift, range: users.range, release };
  }
  for (let attempt = 0; attempt < 100; attempt++) {
    const shift = candidateShift(machine, attempt);
    const release = tryLock(runtimeDir, shift);
    if (release !== undefined) return { shift, range: RANGE, release };
  }
  throw new NspawnError('EBUSY', 'Failed to find a free UID range for the container');
}

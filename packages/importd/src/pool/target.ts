import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { ensurePoolDir, ImageExistsError, type ImagePool } from '@sd/machined';
import {
  AT,
  closeQuietly,
  createSubvolume,
  ERRNO,
  isBtrfsFd,
  mkdirat,
  O,
  openat,
  RENAME,
  removeTree,
  renameat2,
  SyscallError,
} from '@sd/sys';

/**
 * A new image is built under a hidden temporary name in the pool
 * (`.#NAME<random>`, which machined never lists) and renamed into place
 * only when complete; on failure or cancel it is removed. Trees become a
 * btrfs subvolume when the pool is on btrfs (so clones are snapshots),
 * a plain directory otherwise; raw images are NAME.raw files.
 */

export type TargetKind = 'tree' | 'raw';

export interface TempImage {
  readonly name: string;
  readonly kind: TargetKind;
  /** The temporary path (a directory, subvolume or file). */
  readonly path: string;
  readonly subvolume: boolean;
}

const { EEXIST } = ERRNO;

/** `.#import-<pid>-`: hidden from machined, and tells whose import it was after a crash. */
const TEMP_PREFIX = '.#import-';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temporary images of imports whose process is gone (a daemon killed
 * with SIGKILL cannot clean up): called when sd-importd starts. Returns the
 * names removed.
 */
export function removeStaleTempImages(poolDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(poolDir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = /^\.#import-(\d+)-/.exec(n);
    if (!m || alive(Number(m[1]))) continue;
    try {
      removeTree(`${poolDir}/${n}`);
      removed.push(n);
    } catch {}
  }
  return removed;
}

function finalEntry(t: TempImage): string {
  return t.kind === 'raw' ? `${t.name}.raw` : t.name;
}

/** Refuses early when the name is taken (unless `force`), before any byte is transferred. */
export async function checkFree(pool: ImagePool, name: string, force: boolean): Promise<void> {
  const existing = await pool.get(name);
  if (existing && !force) throw new ImageExistsError(name, existing.path);
}

export function createTempImage(poolDir: string, name: string, kind: TargetKind): TempImage {
  ensurePoolDir(poolDir);
  const temp = `${TEMP_PREFIX}${process.pid}-${name}${randomBytes(8).toString('hex')}${kind === 'raw' ? '.raw' : ''}`;
  const path = `${poolDir}/${temp}`;
  const poolFd = openat(AT.FDCWD, poolDir, O.RDONLY | O.DIRECTORY);
  try {
    if (kind === 'raw') {
      closeQuietly(openat(poolFd, temp, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, 0o644));
      return { name, kind, path, subvolume: false };
    }
    if (isBtrfsFd(poolFd)) {
      createSubvolume(poolFd, temp);
      return { name, kind, path, subvolume: true };
    }
    mkdirat(poolFd, temp, 0o755);
    return { name, kind, path, subvolume: false };
  } finally {
    closeQuietly(poolFd);
  }
}

/** Removes a temporary image; never throws (it runs on error paths). */
export function discardTempImage(t: TempImage): void {
  try {
    removeTree(t.path);
  } catch {}
}

/**
 * Renames the finished image into place. With `force`, an existing image
 * of that name is removed first (through the pool, so its .nspawn file goes
 * too). Read-only is applied through the pool, as machined does it.
 */
export async function commitTempImage(
  pool: ImagePool,
  t: TempImage,
  options: { force?: boolean; readOnly?: boolean } = {},
): Promise<string> {
  const existing = await pool.get(t.name);
  if (existing) {
    if (!options.force) throw new ImageExistsError(t.name, existing.path);
    await pool.remove(t.name);
  }
  const final = `${pool.poolPath}/${finalEntry(t)}`;
  try {
    renameat2(AT.FDCWD, t.path, AT.FDCWD, final, RENAME.NOREPLACE);
  } catch (e) {
    if (e instanceof SyscallError && e.errno === EEXIST) throw new ImageExistsError(t.name, final);
    throw e;
  }
  if (options.readOnly) await pool.markReadOnly(t.name, true);
  return final;
}

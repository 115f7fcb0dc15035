import { randomBytes } from 'node:crypto';
import {
  AT,
  closeQuietly,
  copyTree,
  createSubvolume,
  DataCopier,
  ERRNO,
  FS_MAGIC,
  fchmod,
  fchown,
  fstatfs,
  futimens,
  mkdirInRoot,
  O,
  openat,
  openRoot,
  RENAME,
  removeTree,
  renameat2,
  SyscallError,
  setSubvolumeReadOnly,
  snapshot,
  statxFull,
} from '@sd/sys';
import { ImageExistsError, ImageNotSupportedError } from './errors.js';
import type { ImageInfo } from './types.js';

/**
 * Cloning an image into the pool: a btrfs snapshot when the source is a
 * subvolume on the pool's file system (instant, shares all extents); a new
 * subvolume filled with reflinks when the pool is btrfs; else a copy
 * (reflinks where the file system has them, copy_file_range otherwise).
 * The copy is made under a temporary name and renamed into place, so a
 * failure leaves nothing behind.
 */

const { EEXIST } = ERRNO;
const { EXDEV } = ERRNO;

export type CloneMethod = 'snapshot' | 'subvolume+copy' | 'copy' | 'file';

export function ensurePoolDir(poolDir: string): void {
  const rootFd = openRoot('/');
  try {
    mkdirInRoot(rootFd, poolDir, 0o700, { parents: true });
  } finally {
    closeQuietly(rootFd);
  }
}

function tempName(newName: string): string {
  return `.#${newName}${randomBytes(8).toString('hex')}`;
}

function publish(poolFd: number, tmp: string, final: string, newName: string, poolDir: string): void {
  try {
    renameat2(poolFd, tmp, poolFd, final, RENAME.NOREPLACE);
  } catch (e) {
    if (e instanceof SyscallError && e.errno === EEXIST)
      throw new ImageExistsError(newName, `${poolDir}/${final}`);
    throw e;
  }
}

async function cloneTree(
  src: ImageInfo,
  newName: string,
  readOnly: boolean,
  poolDir: string,
  poolFd: number,
  parallel: boolean,
): Promise<CloneMethod> {
  const tmp = tempName(newName);
  const tmpPath = `${poolDir}/${tmp}`;
  const onBtrfs = fstatfs(poolFd, poolDir).type === FS_MAGIC.BTRFS;
  let method: CloneMethod = 'copy';
  try {
    if (onBtrfs && src.type === 'subvolume') {
      const s = openat(AT.FDCWD, src.path, O.RDONLY | O.DIRECTORY);
      try {
        snapshot(s, poolFd, tmp, { readOnly });
        method = 'snapshot';
      } catch (e) {
        // Another btrfs file system: copy below.
        if (!(e instanceof SyscallError && e.errno === EXDEV)) throw e;
      } finally {
        closeQuietly(s);
      }
    }
    if (method !== 'snapshot') {
      if (onBtrfs) {
        createSubvolume(poolFd, tmp);
        method = 'subvolume+copy';
      }
      await copyTree(src.path, tmpPath, { into: onBtrfs, reflink: 'auto', parallel });
      if (readOnly && onBtrfs) {
        const fd = openat(poolFd, tmp, O.RDONLY | O.DIRECTORY);
        try {
          setSubvolumeReadOnly(fd, true, tmpPath);
        } finally {
          closeQuietly(fd);
        }
      }
    }
    publish(poolFd, tmp, newName, newName, poolDir);
    return method;
  } catch (e) {
    try {
      removeTree(tmpPath);
    } catch {}
    throw e;
  }
}

async function cloneRaw(
  src: ImageInfo,
  newName: string,
  poolDir: string,
  poolFd: number,
): Promise<CloneMethod> {
  const tmp = `${tempName(newName)}.raw`;
  const s = openat(AT.FDCWD, src.path, O.RDONLY);
  let d: number | undefined;
  try {
    const st = statxFull(s, '', AT.EMPTY_PATH);
    d = openat(poolFd, tmp, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, 0o600);
    await new DataCopier('auto').copyAsync(s, d, src.path);
    fchown(d, st.uid, st.gid, `${poolDir}/${tmp}`);
    // Writable whatever the source was; read-only is applied afterwards if asked.
    fchmod(d, (st.mode & 0o7777) | 0o200, `${poolDir}/${tmp}`);
    futimens(d, st.atime, st.mtime, `${poolDir}/${tmp}`);
    closeQuietly(d);
    d = undefined;
    publish(poolFd, tmp, `${newName}.raw`, newName, poolDir);
    return 'file';
  } catch (e) {
    closeQuietly(d);
    d = undefined;
    try {
      removeTree(`${poolDir}/${tmp}`);
    } catch {}
    throw e;
  } finally {
    closeQuietly(s, d);
  }
}

/** Clones `src` as `newName` into `poolDir`. Read-only for trees is applied here only for btrfs subvolumes. */
export async function cloneImage(
  src: ImageInfo,
  newName: string,
  readOnly: boolean,
  poolDir: string,
  /** Copy a tree with a second process (copyTree `parallel`). */
  parallel = false,
): Promise<CloneMethod> {
  if (src.type === 'block')
    throw new ImageNotSupportedError(src.name, 'Cloning block device images is not supported');
  ensurePoolDir(poolDir);
  const poolFd = openat(AT.FDCWD, poolDir, O.RDONLY | O.DIRECTORY);
  try {
    if (src.type === 'raw') return await cloneRaw(src, newName, poolDir, poolFd);
    return await cloneTree(src, newName, readOnly, poolDir, poolFd, parallel);
  } finally {
    closeQuietly(poolFd);
  }
}

import { HOST_IMAGE, imageNameIsValid, withoutRawSuffix } from '@sd/basic';
import {
  AT,
  changeInodeFlags,
  closeQuietly,
  ERRNO,
  FS_FL,
  FS_MAGIC,
  type FullStat,
  fstatfs,
  getInodeFlags,
  getSubvolumeReadOnly,
  ioctlPtr,
  O,
  openat,
  qgroupInfo,
  readDirFd,
  S_IF,
  ST,
  SyscallError,
  statxFull,
  subvolumeId,
  timespecToUsec,
} from '@sd/sys';
import { ImageNotFoundError } from './errors.js';
import type { ImagePoolPaths } from './paths.js';
import type { ImageInfo } from './types.js';

/**
 * Finding images in the search path and reading what an image is:
 * directory, btrfs subvolume, raw file (NAME.raw) or block device; its
 * times, usage, limits and whether it is read-only.
 */

export const UINT64_MAX = 0xffff_ffff_ffff_ffffn;
const { ENOENT } = ERRNO;
const { ENOTDIR } = ERRNO;
const BLKROGET = 0x125e;
const BLKGETSIZE64 = 0x80081272;

const usec = (st: FullStat, which: 'btime' | 'mtime'): bigint => {
  const t = st[which];
  return t === undefined ? 0n : timespecToUsec(t);
};

const isVendor = (path: string, paths: ImagePoolPaths): boolean =>
  paths.vendorPrefix !== '' && (path === paths.vendorPrefix || path.startsWith(`${paths.vendorPrefix}/`));

function directoryImage(name: string, path: string, st: FullStat, paths: ImagePoolPaths): ImageInfo {
  const fd = openat(AT.FDCWD, path, O.RDONLY | O.DIRECTORY);
  try {
    const fs = fstatfs(fd, path);
    let readOnly = (fs.flags & ST.RDONLY) !== 0 || isVendor(path, paths) || name === HOST_IMAGE;
    const base: ImageInfo = {
      name,
      path,
      type: 'directory',
      readOnly,
      crtime: usec(st, 'btime'),
      mtime: usec(st, 'mtime'),
      usage: UINT64_MAX,
      usageExclusive: UINT64_MAX,
      limit: UINT64_MAX,
      limitExclusive: UINT64_MAX,
    };
    if (fs.type === FS_MAGIC.BTRFS && st.ino === 256n) {
      readOnly ||= getSubvolumeReadOnly(fd, path);
      const q = qgroupInfo(fd, subvolumeId(fd, path), path);
      return {
        ...base,
        type: 'subvolume',
        readOnly,
        ...(q && {
          usage: q.referenced,
          usageExclusive: q.exclusive,
          limit: q.maxReferenced ?? UINT64_MAX,
          limitExclusive: q.maxExclusive ?? UINT64_MAX,
        }),
      };
    }
    try {
      readOnly ||= (getInodeFlags(fd, path) & FS_FL.IMMUTABLE) !== 0;
    } catch {
      // File systems without inode flags (tmpfs before 6.x, overlayfs) cannot be immutable.
    }
    return { ...base, readOnly };
  } finally {
    closeQuietly(fd);
  }
}

function rawImage(name: string, path: string, st: FullStat, paths: ImagePoolPaths): ImageInfo {
  const fd = openat(AT.FDCWD, path, O.PATH);
  let fsRo = false;
  try {
    fsRo = (fstatfs(fd, path).flags & ST.RDONLY) !== 0;
  } finally {
    closeQuietly(fd);
  }
  const usage = st.blocks * 512n;
  return {
    name,
    path,
    type: 'raw',
    readOnly: (st.mode & 0o222) === 0 || fsRo || (st.attributes & 0x10n) !== 0n || isVendor(path, paths),
    crtime: usec(st, 'btime'),
    mtime: usec(st, 'mtime'),
    usage,
    usageExclusive: usage,
    limit: st.size,
    limitExclusive: st.size,
  };
}

function blockImage(name: string, path: string, st: FullStat): ImageInfo | undefined {
  let fd: number;
  try {
    fd = openat(AT.FDCWD, path, O.RDONLY | O.NONBLOCK | O.NOCTTY);
  } catch {
    return undefined;
  }
  try {
    const ro = Buffer.alloc(4);
    const size = Buffer.alloc(8);
    ioctlPtr(fd, BLKROGET, ro, 'ioctl(BLKROGET)', path);
    ioctlPtr(fd, BLKGETSIZE64, size, 'ioctl(BLKGETSIZE64)', path);
    const bytes = size.readBigUInt64LE(0);
    return {
      name,
      path,
      type: 'block',
      readOnly: ro.readInt32LE(0) !== 0,
      crtime: usec(st, 'btime'),
      mtime: usec(st, 'mtime'),
      usage: bytes,
      usageExclusive: bytes,
      limit: bytes,
      limitExclusive: bytes,
    };
  } catch {
    return undefined;
  } finally {
    closeQuietly(fd);
  }
}

/**
 * The image at `dir/entry` (entry is the file name: NAME or NAME.raw), or
 * undefined when there is none of a known type. Links are followed, as
 * systemd does: an image may be a symlink to a tree elsewhere.
 */
export function makeImage(dir: string, entry: string, paths: ImagePoolPaths): ImageInfo | undefined {
  const path = `${dir}/${entry}`;
  let st: FullStat;
  try {
    st = statxFull(AT.FDCWD, path);
  } catch (e) {
    if (e instanceof SyscallError && (e.errno === ENOENT || e.errno === ENOTDIR)) return undefined;
    throw e;
  }
  const type = st.mode & S_IF.MT;
  if (type === S_IF.DIR) return directoryImage(entry, path, st, paths);
  const rawName = withoutRawSuffix(entry);
  if (type === S_IF.REG && rawName !== entry && rawName !== '') return rawImage(rawName, path, st, paths);
  if (type === S_IF.BLK) return blockImage(entry, path, st);
  return undefined;
}

/** The `.host` image: the host's root, always read-only. */
export function hostImage(paths: ImagePoolPaths): ImageInfo {
  const st = statxFull(AT.FDCWD, paths.hostRoot);
  return { ...directoryImage(HOST_IMAGE, paths.hostRoot, st, paths), type: 'directory', readOnly: true };
}

/** Finds one image by name along the search path; undefined when there is none. */
export function findImage(name: string, paths: ImagePoolPaths): ImageInfo | undefined {
  if (name === HOST_IMAGE) return hostImage(paths);
  for (const dir of paths.searchPath) {
    const img = makeImage(dir, name, paths);
    if (img && img.type !== 'raw') return img;
    const raw = makeImage(dir, `${name}.raw`, paths);
    if (raw?.type === 'raw') return raw;
  }
  return undefined;
}

/** Like findImage, but throws ImageNotFoundError. */
export function requireImage(name: string, paths: ImagePoolPaths): ImageInfo {
  const img = findImage(name, paths);
  if (!img) throw new ImageNotFoundError(name);
  return img;
}

/** Every image along the search path (first match of a name wins) plus `.host`, sorted by name. */
export function discoverImages(paths: ImagePoolPaths): ImageInfo[] {
  const found = new Map<string, ImageInfo>();
  for (const dir of paths.searchPath) {
    let fd: number;
    try {
      fd = openat(AT.FDCWD, dir, O.RDONLY | O.DIRECTORY);
    } catch {
      continue;
    }
    let entries: string[];
    try {
      entries = readDirFd(fd, dir).map((e) => e.name);
    } finally {
      closeQuietly(fd);
    }
    for (const entry of entries.sort()) {
      if (entry.startsWith('.#')) continue;
      const name = withoutRawSuffix(entry);
      if (!imageNameIsValid(name) || found.has(name) || name === HOST_IMAGE) continue;
      try {
        const img = makeImage(dir, entry, paths);
        if (img) found.set(img.name, img);
      } catch {
        // An entry that vanished or cannot be inspected is not an image to list.
      }
    }
  }
  if (!found.has(HOST_IMAGE)) found.set(HOST_IMAGE, hostImage(paths));
  return [...found.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Sets or clears the immutable flag of a file or directory; true when it was set before. */
export function setImmutable(path: string, on: boolean): boolean {
  const fd = openat(AT.FDCWD, path, O.RDONLY | O.NONBLOCK | O.NOFOLLOW);
  try {
    return (changeInodeFlags(fd, on ? FS_FL.IMMUTABLE : 0, FS_FL.IMMUTABLE, path) & FS_FL.IMMUTABLE) !== 0;
  } finally {
    closeQuietly(fd);
  }
}

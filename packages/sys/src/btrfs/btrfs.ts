import { AT, O } from '../constants.js';
import { FS_MAGIC, fstatfs, statxFull } from '../copy/stat.js';
import { InvalidArgumentError, SyscallError } from '../errors.js';
import { closeQuietly, openat } from '../fd/fd.js';
import { koffi } from '../ffi/libc.js';
import { ioctlPtr, ioctlPtrRaw } from '../ioctl/ioctl.js';
import {
  BTRFS_FIRST_FREE_OBJECTID,
  BTRFS_IOC,
  BTRFS_SUBVOL_RDONLY,
  VOL_ARGS_SIZE,
  VOL_ARGS_V2_SIZE,
  VOL_NAME_MAX,
  VOL_V2_NAME_MAX,
  VOL_V2_NAME_OFFSET,
} from './abi.js';

/**
 * btrfs subvolumes through the kernel's ioctls: create, snapshot, destroy,
 * the read-only flag, and the subvolume id. Functions that take a path
 * open it themselves; those taking fds work on directory fds (not O_PATH:
 * ioctls need a real open).
 */

const ENOTTY = 25;

function nameArg(name: string, max: number): Buffer {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
    throw new InvalidArgumentError(`not a valid subvolume name: ${JSON.stringify(name)}`);
  const b = Buffer.from(name, 'utf8');
  if (b.length > max) throw new InvalidArgumentError(`subvolume name too long: ${JSON.stringify(name)}`);
  return b;
}

/** Opens a directory for ioctls (O_RDONLY|O_DIRECTORY). */
export function openDir(path: string, dirfd: number = AT.FDCWD): number {
  return openat(dirfd, path, O.RDONLY | O.DIRECTORY);
}

/** Whether the open fd lives on btrfs. */
export function isBtrfsFd(fd: number): boolean {
  return fstatfs(fd).type === FS_MAGIC.BTRFS;
}

/** Whether the open directory fd is the root of a btrfs subvolume (inode 256 on btrfs). */
export function isSubvolumeFd(fd: number): boolean {
  if (!isBtrfsFd(fd)) return false;
  const st = statxFull(fd, '', AT.EMPTY_PATH);
  return (st.mode & 0o170000) === 0o040000 && st.ino === BTRFS_FIRST_FREE_OBJECTID;
}

export function isSubvolume(path: string): boolean {
  const fd = openat(AT.FDCWD, path, O.PATH | O.DIRECTORY);
  try {
    return isSubvolumeFd(fd);
  } finally {
    closeQuietly(fd);
  }
}

/** Creates an empty subvolume `name` in the directory `dirFd`. */
export function createSubvolume(dirFd: number, name: string): void {
  const b = Buffer.alloc(VOL_ARGS_SIZE);
  nameArg(name, VOL_NAME_MAX).copy(b, 8);
  ioctlPtr(dirFd, BTRFS_IOC.SUBVOL_CREATE, b, 'ioctl(BTRFS_IOC_SUBVOL_CREATE)', name);
}

export interface SnapshotOptions {
  /** Make the snapshot read-only (BTRFS_SUBVOL_RDONLY). */
  readOnly?: boolean;
}

/**
 * Snapshots the subvolume open at `srcFd` as `name` in `dstDirFd`
 * (BTRFS_IOC_SNAP_CREATE_V2): instant, shares every extent. Subvolumes
 * nested inside the source appear as empty directories in the snapshot.
 */
export function snapshot(srcFd: number, dstDirFd: number, name: string, opts: SnapshotOptions = {}): void {
  const b = Buffer.alloc(VOL_ARGS_V2_SIZE);
  b.writeBigInt64LE(BigInt(srcFd), 0);
  b.writeBigUInt64LE(opts.readOnly ? BTRFS_SUBVOL_RDONLY : 0n, 16);
  nameArg(name, VOL_V2_NAME_MAX).copy(b, VOL_V2_NAME_OFFSET);
  ioctlPtr(dstDirFd, BTRFS_IOC.SNAP_CREATE_V2, b, 'ioctl(BTRFS_IOC_SNAP_CREATE_V2)', name);
}

/**
 * Destroys the subvolume `name` in `dirFd` with everything in it
 * (BTRFS_IOC_SNAP_DESTROY; read-only subvolumes too). Fails with ENOTEMPTY
 * while it contains other subvolumes.
 */
export function destroySubvolume(dirFd: number, name: string): void {
  const b = Buffer.alloc(VOL_ARGS_SIZE);
  nameArg(name, VOL_NAME_MAX).copy(b, 8);
  ioctlPtr(dirFd, BTRFS_IOC.SNAP_DESTROY, b, 'ioctl(BTRFS_IOC_SNAP_DESTROY)', name);
}

/** Whether the subvolume open at `fd` is read-only. */
export function getSubvolumeReadOnly(fd: number, path?: string): boolean {
  const b = Buffer.alloc(8);
  ioctlPtr(fd, BTRFS_IOC.SUBVOL_GETFLAGS, b, 'ioctl(BTRFS_IOC_SUBVOL_GETFLAGS)', path);
  return (b.readBigUInt64LE(0) & BTRFS_SUBVOL_RDONLY) !== 0n;
}

/** Sets or clears the read-only flag of the subvolume open at `fd`. */
export function setSubvolumeReadOnly(fd: number, readOnly: boolean, path?: string): void {
  const b = Buffer.alloc(8);
  ioctlPtr(fd, BTRFS_IOC.SUBVOL_GETFLAGS, b, 'ioctl(BTRFS_IOC_SUBVOL_GETFLAGS)', path);
  const old = b.readBigUInt64LE(0);
  const next = readOnly ? old | BTRFS_SUBVOL_RDONLY : old & ~BTRFS_SUBVOL_RDONLY;
  if (next === old) return;
  b.writeBigUInt64LE(next, 0);
  ioctlPtr(fd, BTRFS_IOC.SUBVOL_SETFLAGS, b, 'ioctl(BTRFS_IOC_SUBVOL_SETFLAGS)', path);
}

/** The id of the subvolume containing the open fd (BTRFS_IOC_INO_LOOKUP of its root). */
export function subvolumeId(fd: number, path?: string): bigint {
  const b = Buffer.alloc(4096);
  b.writeBigUInt64LE(0n, 0);
  b.writeBigUInt64LE(BTRFS_FIRST_FREE_OBJECTID, 8);
  if (ioctlPtrRaw(fd, BTRFS_IOC.INO_LOOKUP, b) < 0) {
    const errno = koffi.errno();
    throw new SyscallError('ioctl(BTRFS_IOC_INO_LOOKUP)', errno === ENOTTY ? ENOTTY : errno, path);
  }
  return b.readBigUInt64LE(0);
}

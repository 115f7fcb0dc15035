import { SyscallError } from '../errors.js';
import { koffi } from '../ffi/libc.js';
import { ioctlInt, ioctlPtr, ioctlPtrRaw } from '../ioctl/ioctl.js';
import {
  BTRFS_IOC,
  BTRFS_QGROUP_INFO_KEY,
  BTRFS_QGROUP_LIMIT,
  BTRFS_QGROUP_LIMIT_KEY,
  BTRFS_QUOTA_CTL,
  BTRFS_QUOTA_TREE_OBJECTID,
  SEARCH_HEADER_SIZE,
  SEARCH_KEY_SIZE,
} from './abi.js';

/**
 * btrfs quota groups: turning quota on, the usage and limits of a level-0
 * qgroup (one per subvolume, id = subvolume id), and setting a limit. All
 * calls take an open directory fd on the file system.
 */

const ENOENT = 2;
const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** Usage and limits of one qgroup; a limit is undefined when none is set. */
export interface QgroupInfo {
  referenced: bigint;
  exclusive: bigint;
  maxReferenced: bigint | undefined;
  maxExclusive: bigint | undefined;
}

/** The items of one key (objectid 0, `type`, offset = qgroup id) of the quota tree; undefined without quota. */
function searchQuotaItem(fd: number, type: number, qgroupId: bigint, path?: string): Buffer | undefined {
  const b = Buffer.alloc(4096);
  b.writeBigUInt64LE(BTRFS_QUOTA_TREE_OBJECTID, 0);
  b.writeBigUInt64LE(0n, 8);
  b.writeBigUInt64LE(0n, 16);
  b.writeBigUInt64LE(qgroupId, 24);
  b.writeBigUInt64LE(qgroupId, 32);
  b.writeBigUInt64LE(0n, 40);
  b.writeBigUInt64LE(U64_MAX, 48);
  b.writeUInt32LE(type, 56);
  b.writeUInt32LE(type, 60);
  b.writeUInt32LE(1, 64);
  if (ioctlPtrRaw(fd, BTRFS_IOC.TREE_SEARCH, b) < 0) {
    const errno = koffi.errno();
    // No quota tree: quota is off.
    if (errno === ENOENT) return undefined;
    throw new SyscallError('ioctl(BTRFS_IOC_TREE_SEARCH)', errno, path);
  }
  const found = b.readUInt32LE(64);
  for (let i = 0, off = SEARCH_KEY_SIZE; i < found; i++) {
    const objectid = b.readBigUInt64LE(off + 8);
    const offset = b.readBigUInt64LE(off + 16);
    const itemType = b.readUInt32LE(off + 24);
    const len = b.readUInt32LE(off + 28);
    const data = off + SEARCH_HEADER_SIZE;
    if (objectid === 0n && itemType === type && offset === qgroupId) return b.subarray(data, data + len);
    off = data + len;
  }
  return Buffer.alloc(0);
}

/** Whether quota is enabled on the file system of `fd`. */
export function quotaEnabled(fd: number, path?: string): boolean {
  return searchQuotaItem(fd, BTRFS_QGROUP_INFO_KEY, 0n, path) !== undefined;
}

/** Turns quota on (BTRFS_IOC_QUOTA_CTL) and waits for the initial rescan. */
export function enableQuota(fd: number, path?: string): void {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(BTRFS_QUOTA_CTL.ENABLE), 0);
  ioctlPtr(fd, BTRFS_IOC.QUOTA_CTL, b, 'ioctl(BTRFS_IOC_QUOTA_CTL)', path);
  waitQuotaRescan(fd, path);
}

/** Waits until a running quota rescan is done (BTRFS_IOC_QUOTA_RESCAN_WAIT). */
export function waitQuotaRescan(fd: number, path?: string): void {
  ioctlInt(fd, BTRFS_IOC.QUOTA_RESCAN_WAIT, 0, 'ioctl(BTRFS_IOC_QUOTA_RESCAN_WAIT)', path);
}

/** Usage and limits of qgroup 0/`subvolumeId`; undefined when quota is off. */
export function qgroupInfo(fd: number, subvolumeId: bigint, path?: string): QgroupInfo | undefined {
  const info = searchQuotaItem(fd, BTRFS_QGROUP_INFO_KEY, subvolumeId, path);
  if (info === undefined) return undefined;
  const limit = searchQuotaItem(fd, BTRFS_QGROUP_LIMIT_KEY, subvolumeId, path) ?? Buffer.alloc(0);
  const flags = limit.length >= 24 ? limit.readBigUInt64LE(0) : 0n;
  return {
    referenced: info.length >= 16 ? info.readBigUInt64LE(8) : 0n,
    exclusive: info.length >= 32 ? info.readBigUInt64LE(24) : 0n,
    maxReferenced: flags & BTRFS_QGROUP_LIMIT.MAX_RFER ? limit.readBigUInt64LE(8) : undefined,
    maxExclusive: flags & BTRFS_QGROUP_LIMIT.MAX_EXCL ? limit.readBigUInt64LE(16) : undefined,
  };
}

/**
 * Limits the referenced bytes of the subvolume open at `fd` (its level-0
 * qgroup); undefined removes the limit. Quota must be on.
 */
export function setQgroupLimit(fd: number, maxReferenced: bigint | undefined, path?: string): void {
  const b = Buffer.alloc(48);
  b.writeBigUInt64LE(0n, 0); // 0: the qgroup of the subvolume fd is in
  b.writeBigUInt64LE(BTRFS_QGROUP_LIMIT.MAX_RFER, 8);
  b.writeBigUInt64LE(maxReferenced ?? U64_MAX, 16);
  ioctlPtr(fd, BTRFS_IOC.QGROUP_LIMIT, b, 'ioctl(BTRFS_IOC_QGROUP_LIMIT)', path);
}

/** Removes qgroup 0/`subvolumeId` (after its subvolume was destroyed). */
export function destroyQgroup(fd: number, subvolumeId: bigint, path?: string): void {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(0n, 0);
  b.writeBigUInt64LE(subvolumeId, 8);
  ioctlPtr(fd, BTRFS_IOC.QGROUP_CREATE, b, 'ioctl(BTRFS_IOC_QGROUP_CREATE)', path);
}

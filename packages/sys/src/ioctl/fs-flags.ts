import { ioctlPtr, ior, iow } from './ioctl.js';

/**
 * Inode flags (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS, what chattr changes). The
 * ioctls are declared with `long` but the kernel reads and writes an int.
 */

export const FS_IOC_GETFLAGS = ior(0x66, 1, 8);
export const FS_IOC_SETFLAGS = iow(0x66, 2, 8);

export const FS_FL = {
  SECRM: 0x1,
  UNRM: 0x2,
  COMPR: 0x4,
  SYNC: 0x8,
  IMMUTABLE: 0x10,
  APPEND: 0x20,
  NODUMP: 0x40,
  NOATIME: 0x80,
  NOCOW: 0x800000,
} as const;

/** The inode flags of an open file (any fd type except O_PATH). */
export function getInodeFlags(fd: number, path?: string): number {
  const b = Buffer.alloc(8);
  ioctlPtr(fd, FS_IOC_GETFLAGS, b, 'ioctl(FS_IOC_GETFLAGS)', path);
  return b.readInt32LE(0);
}

/** Sets the bits of `mask` to those of `value`, leaving the others; returns the previous flags. */
export function changeInodeFlags(fd: number, value: number, mask: number, path?: string): number {
  const old = getInodeFlags(fd, path);
  const next = (old & ~mask) | (value & mask);
  if (next !== old) {
    const b = Buffer.alloc(8);
    b.writeInt32LE(next, 0);
    ioctlPtr(fd, FS_IOC_SETFLAGS, b, 'ioctl(FS_IOC_SETFLAGS)', path);
  }
  return old;
}

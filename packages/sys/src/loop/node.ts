// Block device nodes for loop devices and their partitions. This machine's
// devtmpfs (and containers without udev) may lack them, so we make them.

import { lstatSync, readFileSync } from 'node:fs';
import { S_IF } from '../constants.js';
import { SyscallError } from '../errors.js';
import { koffi, lazyFunc } from '../ffi/libc.js';

const c = {
  mknod: lazyFunc('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
  unlink: lazyFunc('int unlink(const char *path)'),
};

const EEXIST = 17;
const ENOENT = 2;

/** glibc's makedev(): the dev_t of a major:minor pair. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** major:minor of a block device from /sys/class/block/<name>/dev, or undefined if there is none. */
export function sysfsDevNumber(name: string): { major: number; minor: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/sys/class/block/${name}/dev`, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^(\d+):(\d+)/.exec(text.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]) };
}

function rdevOf(path: string): bigint | undefined {
  try {
    const st = lstatSync(path, { bigint: true });
    return st.isBlockDevice() ? st.rdev : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Makes sure /dev/<name> is the block device named in sysfs. Returns true when
 * we created the node (so the caller may remove it again).
 */
export function ensureBlockNode(name: string, path = `/dev/${name}`): boolean {
  const dev = sysfsDevNumber(name);
  if (dev === undefined) throw new SyscallError('stat', ENOENT, `/sys/class/block/${name}`);
  const want = makedev(dev.major, dev.minor);
  const have = rdevOf(path);
  if (have !== undefined) return false;
  if (c.mknod(path, S_IF.BLK | 0o660, want) < 0) {
    const errno = koffi.errno();
    // Another process (udev, a parallel attach) made it meanwhile.
    if (errno === EEXIST && rdevOf(path) !== undefined) return false;
    throw new SyscallError('mknod', errno, path);
  }
  return true;
}

/** Removes /dev/<name> if it is still a block device with the given numbers. */
export function removeBlockNode(path: string, major: number, minor: number): void {
  if (rdevOf(path) !== makedev(major, minor)) return;
  if (c.unlink(path) < 0) {
    const errno = koffi.errno();
    if (errno !== ENOENT) throw new SyscallError('unlink', errno, path);
  }
}

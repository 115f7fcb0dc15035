import { AT } from '../constants.js';
import { ERRNO, InvalidArgumentError, SyscallError } from '../errors.js';
import { check, koffi, lazyFunc } from '../ffi/libc.js';
import { view } from '../view.js';

/**
 * The *at() family, typed at a directory fd (AT.FDCWD for the cwd). These
 * follow the kernel's rules for the path: use the fs/resolve.ts helpers
 * when the path comes from inside a container or an image.
 */

const c = {
  mkdirat: lazyFunc('int mkdirat(int dirfd, const char *path, uint32_t mode)'),
  mknodat: lazyFunc('int mknodat(int dirfd, const char *path, uint32_t mode, uint64_t dev)'),
  symlinkat: lazyFunc('int symlinkat(const char *target, int newdirfd, const char *linkpath)'),
  fchownat: lazyFunc('int fchownat(int dirfd, const char *path, uint32_t uid, uint32_t gid, int flags)'),
  unlinkat: lazyFunc('int unlinkat(int dirfd, const char *path, int flags)'),
  fchmodat: lazyFunc('int fchmodat(int dirfd, const char *path, uint32_t mode, int flags)'),
  readlinkat: lazyFunc('long readlinkat(int dirfd, const char *path, _Out_ uint8_t *buf, size_t size)'),
  statx: lazyFunc('int statx(int dirfd, const char *path, int flags, uint32_t mask, _Out_ uint8_t *buf)'),
};

/** Refuses paths the kernel would misread: a NUL byte cuts a C string short. */
export function assertValidPath(path: string, what = 'path', allowEmpty = false): void {
  if (typeof path !== 'string') throw new InvalidArgumentError(`${what} must be a string`);
  if (!allowEmpty && path.length === 0) throw new InvalidArgumentError(`${what} must not be empty`);
  if (path.includes('\0'))
    throw new InvalidArgumentError(`${what} contains a NUL byte: ${JSON.stringify(path)}`);
}

export function mkdirat(dirfd: number, path: string, mode = 0o755): void {
  assertValidPath(path);
  check('mkdirat', c.mkdirat(dirfd, path, mode), path);
}

/** The dev_t of a device number (glibc's encoding, the one mknod(2) takes). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** mknodat(2): `mode` includes the file type (S_IF.CHR...), `dev` comes from makedev(). */
export function mknodat(dirfd: number, path: string, mode: number, dev: number | bigint = 0): void {
  assertValidPath(path);
  check('mknodat', c.mknodat(dirfd, path, mode, BigInt(dev)), path);
}

/** Creates `linkpath` (relative to `dirfd`) pointing at `target`. */
export function symlinkat(target: string, dirfd: number, linkpath: string): void {
  assertValidPath(target, 'symlink target');
  assertValidPath(linkpath);
  check('symlinkat', c.symlinkat(target, dirfd, linkpath), linkpath);
}

/** fchownat(2); -1 leaves an id unchanged. Pass AT.SYMLINK_NOFOLLOW to change a link itself. */
export function fchownat(dirfd: number, path: string, uid: number, gid: number, flags = 0): void {
  assertValidPath(path, 'path', (flags & AT.EMPTY_PATH) !== 0);
  check('fchownat', c.fchownat(dirfd, path, uid >>> 0, gid >>> 0, flags), path || undefined);
}

/** unlinkat(2); AT.REMOVEDIR removes an empty directory. */
export function unlinkat(dirfd: number, path: string, flags = 0): void {
  assertValidPath(path);
  check('unlinkat', c.unlinkat(dirfd, path, flags), path);
}

/**
 * Removes a file (not a directory) if it is there: `rm -f`. Cheaper than
 * fs.rmSync, which loads Node's rimraf on first use (~1 ms of a CLI's start).
 */
export function unlinkIfExists(path: string): void {
  assertValidPath(path);
  if (c.unlinkat(AT.FDCWD, path, 0) < 0) {
    const errno = koffi.errno();
    if (errno !== ERRNO.ENOENT) throw new SyscallError('unlinkat', errno, path);
  }
}

/** fchmodat(2). With AT.SYMLINK_NOFOLLOW glibc refuses symlinks (EOPNOTSUPP) rather than following them. */
export function fchmodat(dirfd: number, path: string, mode: number, flags = 0): void {
  assertValidPath(path);
  check('fchmodat', c.fchmodat(dirfd, path, mode, flags), path);
}

/** The target of a symlink. Pass '' to read the link an O_PATH|O_NOFOLLOW fd refers to. */
export function readlinkat(dirfd: number, path: string): string {
  assertValidPath(path, 'path', true);
  // Targets are at most PATH_MAX, but /proc links may report more; grow until it fits.
  for (let size = 4096; ; size *= 4) {
    const buf = Buffer.alloc(size);
    const n = Number(c.readlinkat(dirfd, path, buf, size));
    if (n < 0) throw new SyscallError('readlinkat', koffi.errno(), path || undefined);
    if (n < size) return buf.toString('utf8', 0, n);
  }
}

export const STATX = {
  TYPE: 0x1,
  MODE: 0x2,
  NLINK: 0x4,
  UID: 0x8,
  GID: 0x10,
  INO: 0x100,
  SIZE: 0x200,
  BASIC_STATS: 0x7ff,
  MNT_ID: 0x1000,
  ATTR_MOUNT_ROOT: 0x2000,
} as const;

/** What statAt() reports. */
export interface StatxResult {
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  ino: bigint;
  size: bigint;
  /** The mount id (as in mountinfo) of the mount the file is on. */
  mountId: number;
  /** Whether the path is the root of a mount; undefined when the kernel cannot tell. */
  mountRoot: boolean | undefined;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
}

/** statx(2) of `path` at `dirfd`. Flags: AT.SYMLINK_NOFOLLOW, AT.EMPTY_PATH, AT.NO_AUTOMOUNT. */
export function statAt(dirfd: number, path: string, flags = 0): StatxResult {
  assertValidPath(path, 'path', (flags & AT.EMPTY_PATH) !== 0);
  const b = Buffer.alloc(256);
  check('statx', c.statx(dirfd, path, flags, STATX.BASIC_STATS | STATX.MNT_ID, b), path || undefined);
  const v = view(b);
  const attributes = v.getBigUint64(8, true);
  const attributesMask = v.getBigUint64(56, true);
  const mr = BigInt(STATX.ATTR_MOUNT_ROOT);
  return {
    mode: v.getUint16(28, true),
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    nlink: v.getUint32(16, true),
    ino: v.getBigUint64(32, true),
    size: v.getBigUint64(40, true),
    mountId: Number(v.getBigUint64(144, true)),
    mountRoot: attributesMask & mr ? (attributes & mr) !== 0n : undefined,
    rdevMajor: v.getUint32(128, true),
    rdevMinor: v.getUint32(132, true),
    devMajor: v.getUint32(136, true),
    devMinor: v.getUint32(140, true),
  };
}

import { AT } from '../constants.js';
import { SyscallError } from '../errors.js';
import { check, koffi, lazyFunc } from '../ffi/libc.js';
import { assertValidPath } from '../fs/at.js';
import { ioctlIntRaw, iow } from '../ioctl/ioctl.js';

/**
 * The per-file calls of a copy: data (copy_file_range, FICLONE), metadata
 * (fchmod, fchown, utimensat), directory entries by fd (getdents64), hard
 * links and renames at directory fds.
 */

const c = {
  copyFileRange: lazyFunc('copy_file_range', 'long', [
    'int',
    'void *',
    'int',
    'void *',
    'size_t',
    'unsigned int',
  ]),
  fchmod: lazyFunc('fchmod', 'int', ['int', 'uint32_t']),
  fchown: lazyFunc('fchown', 'int', ['int', 'uint32_t', 'uint32_t']),
  utimensat: lazyFunc('utimensat', 'int', ['int', 'str', 'uint8_t *', 'int']),
  futimens: lazyFunc('futimens', 'int', ['int', 'uint8_t *']),
  getdents64: lazyFunc('getdents64', 'long', ['int', 'uint8_t *', 'size_t']),
  linkat: lazyFunc('linkat', 'int', ['int', 'str', 'int', 'str', 'int']),
  renameat2: lazyFunc('renameat2', 'int', ['int', 'str', 'int', 'str', 'unsigned int']),
  fsync: lazyFunc('fsync', 'int', ['int']),
  ftruncate: lazyFunc('ftruncate', 'int', ['int', 'int64_t']),
};

/** FICLONE: share all extents of `src` with `dst` (btrfs, xfs, bcachefs...). */
export const FICLONE = iow(0x94, 9, 4);

const EINTR = 4;

/**
 * Makes `dstFd` a reflink copy of `srcFd` (FICLONE). Returns 0 on success,
 * else the errno (EOPNOTSUPP / EXDEV / EINVAL when the file system or the
 * pair cannot share extents): callers fall back to copying.
 */
export function ficlone(dstFd: number, srcFd: number): number {
  if (ioctlIntRaw(dstFd, FICLONE, srcFd) === 0) return 0;
  return koffi.errno();
}

/**
 * copy_file_range(2) from the current offset of `srcFd` to that of `dstFd`:
 * the number of bytes copied (0 at end of file). Throws SyscallError.
 */
export function copyFileRange(srcFd: number, dstFd: number, length: number, path?: string): number {
  for (;;) {
    const n = Number(c.copyFileRange(srcFd, null, dstFd, null, length, 0));
    if (n >= 0) return n;
    const errno = koffi.errno();
    if (errno !== EINTR) throw new SyscallError('copy_file_range', errno, path);
  }
}

/** fchmod(2): permission bits including setuid/setgid/sticky. */
export function fchmod(fd: number, mode: number, path?: string): void {
  check('fchmod', c.fchmod(fd, mode & 0o7777), path);
}

/** fchown(2); -1 leaves an id unchanged. */
export function fchown(fd: number, uid: number, gid: number, path?: string): void {
  check('fchown', c.fchown(fd, uid >>> 0, gid >>> 0), path);
}

// Filled and passed synchronously: one buffer serves every call (the hot loop of a tree copy).
const times = Buffer.alloc(32);

/** A time to set: a Timespec, whose seconds may also be a number (no BigInt to make or write: an archive's mtimes). */
export interface TimespecIn {
  sec: bigint | number;
  nsec: number;
}

function putSec(b: Buffer, off: number, sec: bigint | number): void {
  if (typeof sec === 'bigint') b.writeBigInt64LE(sec, off);
  else if (!Number.isSafeInteger(sec)) b.writeBigInt64LE(BigInt(sec), off);
  else {
    // Two's complement in 32-bit halves: >>> 0 takes the low half of any safe integer, negative ones too.
    b.writeUInt32LE(sec >>> 0, off);
    b.writeInt32LE(Math.floor(sec / 0x1_0000_0000), off + 4);
  }
}

function timesBuf(atime: TimespecIn, mtime: TimespecIn): Buffer {
  const b = times;
  putSec(b, 0, atime.sec);
  // tv_nsec is below 10^9 (or UTIME_NOW/UTIME_OMIT, below 2^30): no BigInt needed for it.
  b.writeUInt32LE(atime.nsec, 8);
  b.writeUInt32LE(0, 12);
  putSec(b, 16, mtime.sec);
  b.writeUInt32LE(mtime.nsec, 24);
  b.writeUInt32LE(0, 28);
  return b;
}

/** Sets access and modification time of an open file. */
export function futimens(fd: number, atime: TimespecIn, mtime: TimespecIn, path?: string): void {
  check('futimens', c.futimens(fd, timesBuf(atime, mtime)), path);
}

/** utimensat(2) at a directory fd; AT.SYMLINK_NOFOLLOW sets the times of a symlink itself. */
export function utimensat(
  dirfd: number,
  path: string,
  atime: TimespecIn,
  mtime: TimespecIn,
  flags = 0,
): void {
  assertValidPath(path);
  check('utimensat', c.utimensat(dirfd, path, timesBuf(atime, mtime), flags), path);
}

export function fsync(fd: number, path?: string): void {
  check('fsync', c.fsync(fd), path);
}

export function ftruncate(fd: number, length: bigint | number, path?: string): void {
  check('ftruncate', c.ftruncate(fd, BigInt(length)), path);
}

/** linkat(2): a new hard link `newPath` (at `newDirFd`) to `oldPath` (at `oldDirFd`). */
export function linkat(
  oldDirFd: number,
  oldPath: string,
  newDirFd: number,
  newPath: string,
  flags = 0,
): void {
  assertValidPath(oldPath, 'path', (flags & AT.EMPTY_PATH) !== 0);
  assertValidPath(newPath);
  check('linkat', c.linkat(oldDirFd, oldPath, newDirFd, newPath, flags), newPath);
}

export const RENAME = { NOREPLACE: 1, EXCHANGE: 2, WHITEOUT: 4 } as const;

/** renameat2(2); RENAME.NOREPLACE fails with EEXIST instead of replacing. */
export function renameat2(
  oldDirFd: number,
  oldPath: string,
  newDirFd: number,
  newPath: string,
  flags = 0,
): void {
  assertValidPath(oldPath);
  assertValidPath(newPath);
  check('renameat2', c.renameat2(oldDirFd, oldPath, newDirFd, newPath, flags), `${oldPath} -> ${newPath}`);
}

/** d_type values of getdents64. */
export const DT = { UNKNOWN: 0, FIFO: 1, CHR: 2, DIR: 4, BLK: 6, REG: 8, LNK: 10, SOCK: 12 } as const;

export interface DirEntry {
  name: string;
  ino: bigint;
  /** DT.*; DT.UNKNOWN when the file system does not say (then stat it). */
  type: number;
}

/**
 * The getdents64 buffer of callers that bring none: one for every call (each
 * call decodes all of it before it returns). A zeroed 64 KiB per directory
 * was a memset and an external allocation for every directory a remove
 * walked.
 */
let direntScratch: Buffer | undefined;

/**
 * The entries of an open directory (without `.` and `..`), read with
 * getdents64 from the fd's current position to the end. Names that are not
 * valid UTF-8 are refused (EILSEQ) rather than silently mangled.
 */
export function readDirFd(fd: number, path?: string, given?: Buffer): DirEntry[] {
  direntScratch ??= Buffer.allocUnsafeSlow(64 * 1024);
  const buf = given ?? direntScratch;
  const out: DirEntry[] = [];
  for (;;) {
    const n = Number(c.getdents64(fd, buf, buf.length));
    if (n < 0) throw new SyscallError('getdents64', koffi.errno(), path);
    if (n === 0) return out;
    for (let off = 0; off < n; ) {
      const reclen = buf.readUInt16LE(off + 16);
      const type = buf[off + 18]!;
      let end = off + 19;
      while (end < off + reclen && buf[end] !== 0) end++;
      // Decoded in place (no Buffer per name: a tree copy lists every entry).
      const start = off + 19;
      const len = end - start;
      if (!(buf[start] === 0x2e && (len === 1 || (len === 2 && buf[start + 1] === 0x2e)))) {
        const name = buf.toString('utf8', start, end);
        if (Buffer.byteLength(name) !== len || name.includes('\ufffd'))
          throw new SyscallError(
            'getdents64',
            84 /* EILSEQ */,
            path === undefined ? undefined : `${path}/${buf.toString('latin1', start, end)}`,
          );
        out.push({ name, ino: buf.readBigUInt64LE(off), type });
      }
      off += reclen;
    }
  }
}

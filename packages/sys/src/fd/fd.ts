import { readdirSync } from 'node:fs';
import { O } from '../constants.js';
import { SyscallError } from '../errors.js';
import { check, koffi, lazyFunc } from '../ffi/libc.js';

const c = {
  open: lazyFunc('int open(const char *path, int flags, uint32_t mode)'),
  openat: lazyFunc('int openat(int dirfd, const char *path, int flags, uint32_t mode)'),
  close: lazyFunc('int close(int fd)'),
  read: lazyFunc('long read(int fd, _Out_ uint8_t *buf, size_t count)'),
  write: lazyFunc('long write(int fd, const uint8_t *buf, size_t count)'),
  pipe2: lazyFunc('int pipe2(_Out_ int *fds, int flags)'),
  dup3: lazyFunc('int dup3(int oldfd, int newfd, int flags)'),
  fcntl: lazyFunc('int fcntl(int fd, int cmd, int arg)'),
  eventfd: lazyFunc('int eventfd(unsigned int initval, int flags)'),
  flock: lazyFunc('int flock(int fd, int op)'),
  isatty: lazyFunc('int isatty(int fd)'),
  lseek: lazyFunc('int64_t lseek(int fd, int64_t offset, int whence)'),
};

/** Opens a path; the fd is close-on-exec unless `flags` says otherwise via `inheritable`. */
export function open(path: string, flags: number, mode = 0o644, inheritable = false): number {
  return check('open', c.open(path, flags | (inheritable ? 0 : O.CLOEXEC), mode), path);
}

export function openat(dirfd: number, path: string, flags: number, mode = 0o644): number {
  return check('openat', c.openat(dirfd, path, flags | O.CLOEXEC, mode), path);
}

export function close(fd: number): void {
  check('close', c.close(fd));
}

/** Closes fds, ignoring errors (for cleanup paths). */
export function closeQuietly(...fds: Array<number | undefined>): void {
  for (const fd of fds) if (fd !== undefined && fd >= 0) c.close(fd);
}

/**
 * Closes an fd on a libuv pool thread, for fds whose last close blocks:
 * an AF_PACKET socket's release waits for an RCU grace period
 * (synchronize_net(), 8–17 ms measured) whatever it did. The caller must
 * have forgotten the fd (poller entry included); errors are ignored, as
 * with closeQuietly. Resolves once it is closed.
 */
export function closeInBackground(fd: number | undefined): Promise<void> {
  if (fd === undefined || fd < 0) return Promise.resolve();
  return new Promise((resolve) => {
    c.close.async(fd, () => resolve());
  });
}

/** Reads up to `buf.length` bytes; returns the count, or -1 for EAGAIN. */
export function read(fd: number, buf: Buffer, length = buf.length): number {
  const n = Number(c.read(fd, buf, length));
  if (n < 0) {
    const errno = koffi.errno();
    if (errno === 11) return -1;
    throw new SyscallError('read', errno);
  }
  return n;
}

/** One write(2): the count written, or -1 for EAGAIN (a full non-blocking pipe or socket). */
export function writeSome(fd: number, data: Buffer): number {
  for (;;) {
    const n = Number(c.write(fd, data, data.length));
    if (n >= 0) return n;
    const errno = koffi.errno();
    if (errno === 11) return -1;
    if (errno !== 4) throw new SyscallError('write', errno);
  }
}

/** Writes all of `data` (retrying short writes); throws on error. */
export function writeAll(fd: number, data: Buffer | string): void {
  let buf = typeof data === 'string' ? Buffer.from(data) : data;
  while (buf.length > 0) {
    const n = Number(c.write(fd, buf, buf.length));
    if (n < 0) {
      const errno = koffi.errno();
      if (errno === 4) continue;
      throw new SyscallError('write', errno);
    }
    buf = buf.subarray(n);
  }
}

/** A pipe, close-on-exec by default: [readEnd, writeEnd]. */
export function pipe(flags = O.CLOEXEC): [number, number] {
  const fds = [0, 0];
  check('pipe2', c.pipe2(fds, flags));
  return [fds[0]!, fds[1]!];
}

export function dup3(oldfd: number, newfd: number, flags = 0): number {
  return check('dup3', c.dup3(oldfd, newfd, flags));
}

export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;

export function fcntl(fd: number, cmd: number, arg = 0): number {
  return check('fcntl', c.fcntl(fd, cmd, arg));
}

export function setNonBlocking(fd: number, on = true): void {
  const fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, on ? fl | O.NONBLOCK : fl & ~O.NONBLOCK);
}

export const EFD = { CLOEXEC: O.CLOEXEC, NONBLOCK: O.NONBLOCK, SEMAPHORE: 1 } as const;

export function eventfd(initval = 0, flags = EFD.CLOEXEC | EFD.NONBLOCK): number {
  return check('eventfd', c.eventfd(initval, flags));
}

/** The numbers of the fds open in this process (from /proc/self/fd). */
export function openFds(): number[] {
  return readdirSync('/proc/self/fd')
    .map(Number)
    .filter((n) => Number.isInteger(n));
}

export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;

/** flock(2) without blocking: false when someone else holds a conflicting lock. */
export function tryFlock(fd: number, op: number, path?: string): boolean {
  if (c.flock(fd, op | LOCK.NB) === 0) return true;
  const errno = koffi.errno();
  if (errno === 11 /* EWOULDBLOCK */) return false;
  throw new SyscallError('flock', errno, path);
}

/**
 * Whether the fd is a terminal. Unlike `process.stdout.isTTY` it does not
 * make Node build the stdio stream (loading net and stream, ~5–20 ms at start).
 */
export function isatty(fd: number): boolean {
  return c.isatty(fd) === 1;
}

export const SEEK = { SET: 0, CUR: 1, END: 2 } as const;

/** lseek(2): the new file offset. */
export function lseek(fd: number, offset: number, whence: number): number {
  return Number(check('lseek', c.lseek(fd, offset, whence) as bigint));
}

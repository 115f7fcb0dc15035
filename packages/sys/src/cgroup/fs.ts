// Small cgroupfs file helpers whose errors are SyscallErrors naming the path.

import { O } from '../constants.js';
import { SyscallError } from '../errors.js';
import { closeQuietly, open } from '../fd/fd.js';
import { koffi, lazyFunc } from '../ffi/libc.js';
import { view } from '../view.js';

const c = {
  read: lazyFunc('long read(int fd, _Out_ uint8_t *buf, size_t count)'),
  write: lazyFunc('long write(int fd, const uint8_t *buf, size_t count)'),
  mkdir: lazyFunc('int mkdir(const char *path, uint32_t mode)'),
  rmdir: lazyFunc('int rmdir(const char *path)'),
  statfs: lazyFunc('int statfs(const char *path, _Out_ uint8_t *buf)'),
};

export const ENOENT = 2;
export const ESRCH = 3;
export const EINTR = 4;
export const EBUSY = 16;
export const EEXIST = 17;

/** Reads a whole (small, pseudo) file. */
export function readText(path: string): string {
  const fd = open(path, O.RDONLY);
  try {
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    for (;;) {
      const n = Number(c.read(fd, buf, buf.length));
      if (n < 0) {
        const errno = koffi.errno();
        if (errno === EINTR) continue;
        throw new SyscallError('read', errno, path);
      }
      if (n === 0) break;
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeQuietly(fd);
  }
}

/** Reads a file, or undefined when it does not exist. */
export function readTextIfExists(path: string): string | undefined {
  try {
    return readText(path);
  } catch (err) {
    if (err instanceof SyscallError && err.errno === ENOENT) return undefined;
    throw err;
  }
}

/** Writes `value` with one write(2): cgroupfs parses each write as one command. */
export function writeText(path: string, value: string): void {
  writeEach(path, [value]);
}

/**
 * Writes each value with a write() of its own to one open of `path`: a
 * cgroup file takes one value (a devices.allow rule) per write.
 */
export function writeEach(path: string, values: readonly string[]): void {
  const fd = open(path, O.WRONLY);
  try {
    for (const value of values) {
      const data = Buffer.from(value);
      for (;;) {
        const n = Number(c.write(fd, data, data.length));
        if (n >= 0) break;
        const errno = koffi.errno();
        if (errno !== EINTR) throw new SyscallError('write', errno, path);
      }
    }
  } finally {
    closeQuietly(fd);
  }
}

/** mkdir; returns false if it already existed. */
export function mkdirOnce(path: string, mode = 0o755): boolean {
  if (c.mkdir(path, mode) === 0) return true;
  const errno = koffi.errno();
  if (errno === EEXIST) return false;
  throw new SyscallError('mkdir', errno, path);
}

/** rmdir; returns the errno instead of throwing (0 on success). */
export function rmdirErrno(path: string): number {
  return c.rmdir(path) === 0 ? 0 : koffi.errno();
}

/** The f_type (magic) of the file system holding `path`. */
export function fsMagic(path: string): bigint {
  const buf = Buffer.alloc(256);
  if (c.statfs(path, buf) < 0) throw new SyscallError('statfs', koffi.errno(), path);
  return view(buf).getBigUint64(0, true);
}

/** Pids listed in a cgroup.procs file (missing file: none). */
export function readPids(path: string): number[] {
  const text = readTextIfExists(path);
  if (text === undefined) return [];
  return text
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

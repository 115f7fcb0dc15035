import { SyscallError } from '../errors.js';
import { koffi, lazyFunc } from '../ffi/libc.js';

const c = {
  sendfile: lazyFunc('sendfile', 'long', ['int', 'int', 'void *', 'size_t']),
};

const EINTR = 4;
/** The kernel moves at most this much per call. */
const MAX = 0x7ffff000;

/** sendfile(2) in a loop until `length` bytes or the end of `inFd`; `off` null: from its file position. */
function sendLoop(outFd: number, inFd: number, length: number, off: Buffer | null, path?: string): number {
  let done = 0;
  while (done < length) {
    // With `off`, the kernel advances the offset in it and leaves the file position alone.
    const n = Number(c.sendfile(outFd, inFd, off, Math.min(length - done, MAX)));
    if (n < 0) {
      const errno = koffi.errno();
      if (errno === EINTR) continue;
      throw new SyscallError('sendfile', errno, path);
    }
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * sendfile(2) from the current offset of `inFd` (a regular file, advanced)
 * to `outFd`: the data moves inside the kernel, never through a user-space
 * buffer, and unlike copy_file_range it works across file systems. Returns
 * the bytes moved, fewer than `length` only at the end of `inFd`. Throws
 * SyscallError.
 */
export function sendfile(outFd: number, inFd: number, length: number, path?: string): number {
  return sendLoop(outFd, inFd, length, null, path);
}

/**
 * sendfile(2) of `length` bytes from `offset` of `inFd` (a regular file,
 * whose file position stays as it is, so calls may overlap) into `outFd`.
 * Returns the bytes moved, fewer than `length` only at the end of `inFd`.
 */
export function sendfileAt(
  outFd: number,
  inFd: number,
  offset: number,
  length: number,
  path?: string,
): number {
  const off = Buffer.alloc(8);
  off.writeBigInt64LE(BigInt(offset));
  return sendLoop(outFd, inFd, length, off, path);
}

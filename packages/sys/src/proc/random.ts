import { SyscallError } from '../errors.js';
import { koffi, lazyFunc } from '../ffi/libc.js';

const c = {
  getrandom: lazyFunc('long getrandom(_Out_ uint8_t *buf, size_t len, unsigned int flags)'),
};

const EINTR = 4;

/**
 * `length` bytes from the kernel's random source (getrandom(2), blocking
 * only until the pool is initialized) — what `crypto.randomBytes` gives,
 * without loading node:crypto (~10–20 ms at start).
 */
export function getRandom(length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = Number(c.getrandom(buf.subarray(done), length - done, 0));
    if (n < 0) {
      const errno = koffi.errno();
      if (errno === EINTR) continue;
      throw new SyscallError('getrandom', errno);
    }
    done += n;
  }
  return buf;
}

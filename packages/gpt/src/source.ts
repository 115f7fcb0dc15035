import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { InvalidArgumentError } from '@sd/sys';

/**
 * What the parsers read: a byte range of an image file, a block device, or a
 * buffer (tests). Reads past the end come back short, never throw, so that
 * every parser decides itself what a short read means.
 */
export interface ImageSource {
  /** For messages: the path, or a name. */
  readonly name: string;
  /** Size in bytes. */
  readonly size: number;
  /** Up to `length` bytes from `offset`; shorter at the end of the image. */
  read(offset: number, length: number): Buffer;
}

/** Largest single read the parsers may ask for: bounds the memory a hostile header can make us use. */
export const MAX_READ = 16 * 1024 * 1024;

function clampRead(size: number, offset: number, length: number): number {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new InvalidArgumentError(`read of ${length} bytes at ${offset}: out of range`);
  }
  if (length > MAX_READ)
    throw new InvalidArgumentError(`read of ${length} bytes refused (limit ${MAX_READ})`);
  return Math.max(0, Math.min(length, size - offset));
}

export function bufferSource(buf: Uint8Array, name = 'buffer'): ImageSource {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    name,
    size: b.length,
    read(offset, length) {
      const n = clampRead(b.length, offset, length);
      return Buffer.from(b.subarray(offset, offset + n));
    },
  };
}

/** Size of a block device from sysfs (fstat says 0 for them). */
function blockDeviceSize(rdev: bigint, name: string): number {
  const major = Number(((rdev >> 32n) & 0xfffff000n) | ((rdev >> 8n) & 0xfffn));
  const minor = Number(((rdev >> 12n) & 0xffffff00n) | (rdev & 0xffn));
  try {
    return Number(readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim()) * 512;
  } catch (e) {
    throw new InvalidArgumentError(`${name}: cannot tell the size of the block device`, { cause: e });
  }
}

/** A source reading an open fd (not closed by the source). */
export function fdSource(fd: number, name: string): ImageSource {
  const st = fstatSync(fd, { bigint: true });
  let size: number;
  if (st.isBlockDevice()) size = blockDeviceSize(st.rdev, name);
  else if (st.isFile()) size = Number(st.size);
  else throw new InvalidArgumentError(`${name}: not a regular file or block device`);
  return {
    name,
    size,
    read(offset, length) {
      const n = clampRead(size, offset, length);
      const out = Buffer.alloc(n);
      let done = 0;
      while (done < n) {
        const got = readSync(fd, out, done, n - done, offset + done);
        if (got === 0) break; // the file shrank meanwhile: a short read
        done += got;
      }
      return done === n ? out : out.subarray(0, done);
    },
  };
}

/** Opens `path` read-only and runs `fn` on a source for it. */
export function withFileSource<T>(path: string, fn: (src: ImageSource) => T): T {
  const fd = openSync(path, 'r');
  try {
    return fn(fdSource(fd, path));
  } finally {
    closeSync(fd);
  }
}

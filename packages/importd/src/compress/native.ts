import { cpus } from 'node:os';
import koffi from 'koffi';
import { CodecUnavailableError } from '../errors.js';

/**
 * The host's compression libraries, loaded on first use by their sonames
 * (Debian: liblzma.so.5, libzstd.so.1, libbz2.so.1.0). Measured here they
 * beat every npm package (see the README), and liblzma's multi-threaded
 * decoder is not in any of them.
 */
type Lib = ReturnType<typeof koffi.load>;
const libs = new Map<string, Lib>();

export function hostLibrary(soname: string, what: string): Lib {
  let lib = libs.get(soname);
  if (!lib) {
    try {
      lib = koffi.load(soname);
    } catch (e) {
      throw new CodecUnavailableError(`${what} needs the host library ${soname}, which cannot be loaded`, {
        cause: e,
      });
    }
    libs.set(soname, lib);
  }
  return lib;
}

/** The address of a Buffer's bytes at `off`; the Buffer must stay referenced meanwhile. */
export function addr(buf: Buffer, off = 0): bigint {
  return (koffi.address(buf) as bigint) + BigInt(off);
}

export function threads(): number {
  return Math.max(1, Math.min(cpus().length, 8));
}

/** A koffi function that can also run on a libuv pool thread. */
export type AsyncFn = ((...args: unknown[]) => unknown) & { async: (...args: unknown[]) => void };

/**
 * Calls `fn` on a libuv pool thread (koffi's async call) and settles with
 * `then(result)`, or with what `then` throws: a decoder's step off the main
 * thread, its outcome read back on it.
 */
export function callAsync<R, T>(fn: unknown, args: unknown[], then: (result: R) => T): Promise<T> {
  return new Promise((resolve, reject) =>
    (fn as AsyncFn).async(...args, (err: unknown, result: R) => {
      if (err) return reject(err);
      try {
        resolve(then(result));
      } catch (e) {
        reject(e);
      }
    }),
  );
}

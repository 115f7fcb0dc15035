import { SdError, SyscallError } from './errors.js';

/**
 * Messages between our own processes (a daemon and its workers, a copy and
 * its helper): JSON with bigints as {"$bigint": "…"}, and errors in a form
 * that comes back as the same SdError / SyscallError on the other side.
 */

export interface WireError {
  message: string;
  code?: string;
  syscall?: string;
  errno?: number;
  path?: string;
}

export const encodeWire = (v: unknown): string =>
  JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? { $bigint: x.toString() } : x));

export const decodeWire = <T>(s: string): T =>
  JSON.parse(s, (_, x) =>
    x && typeof x === 'object' && typeof x.$bigint === 'string' && Object.keys(x).length === 1
      ? BigInt(x.$bigint)
      : x,
  ) as T;

export function errorToWire(e: unknown): WireError {
  if (e instanceof SyscallError)
    return { message: e.message, code: e.code, syscall: e.syscall, errno: e.errno, path: e.path };
  if (e instanceof SdError) return { message: e.message, code: e.code };
  return { message: e instanceof Error ? e.message : String(e) };
}

/** The error as the receiving side throws it; `what` names the sender for an error without a code. */
export function errorFromWire(w: WireError, what: string): Error {
  if (w.syscall !== undefined && w.errno !== undefined) {
    const e = new SyscallError(w.syscall, w.errno, w.path);
    e.message = w.message;
    return e;
  }
  if (w.code) return new SdError(w.code, w.message);
  return new SdError('EIO', `${what} failed: ${w.message}`);
}

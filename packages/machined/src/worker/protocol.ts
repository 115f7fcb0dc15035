import { SdError, SyscallError } from '@sd/sys';
import { BusError } from '../bus/errors.js';
import type { ImagePoolPaths } from '../images/paths.js';
import type { IdRange } from '../inspect/uid-map.js';

/**
 * What sd-machined asks of a worker process, and what the worker answers.
 * The request is the worker's argv[2] (JSON, bigints as {"$bigint": "…"});
 * the answer is one JSON line on fd 3. Fd 4 is the machine's root for a
 * copy; fd 5 is the cancel pipe: EOF on it (the daemon closed it, or died)
 * means stop, clean up and exit.
 */

export const WORKER_RESULT_FD = 3;
export const WORKER_ROOT_FD = 4;
export const WORKER_CANCEL_FD = 5;

export interface CopyRequest {
  op: 'copy';
  direction: 'to' | 'from';
  source: string;
  dest: string;
  replace: boolean;
  /** The machine's uid map (inside → outside), for shifting owners. */
  uids: IdRange[];
  /** Who creates files inside the machine (its root, shifted). */
  creator: { uid: number; gid: number };
}

/** One of the image pool's long methods, run by the pool library in the worker. */
export interface PoolRequest {
  op: 'pool';
  paths: ImagePoolPaths;
  method: 'remove' | 'clone' | 'setLimit' | 'setPoolLimit';
  args: unknown[];
}

export type WorkerRequest = CopyRequest | PoolRequest;

export interface WireError {
  message: string;
  code?: string;
  busName?: string;
  syscall?: string;
  errno?: number;
  path?: string;
}

export type WorkerReply = { ok: true; value?: unknown } | { ok: false; error: WireError };

export const encode = (v: unknown): string =>
  JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? { $bigint: x.toString() } : x));

export const decode = <T>(s: string): T =>
  JSON.parse(s, (_, x) =>
    x && typeof x === 'object' && typeof x.$bigint === 'string' && Object.keys(x).length === 1
      ? BigInt(x.$bigint)
      : x,
  ) as T;

export function errorToWire(e: unknown): WireError {
  if (e instanceof BusError) return { message: e.message, busName: e.busName, code: e.code };
  if (e instanceof SyscallError)
    return { message: e.message, code: e.code, syscall: e.syscall, errno: e.errno, path: e.path };
  if (e instanceof SdError) return { message: e.message, code: e.code };
  return { message: e instanceof Error ? e.message : String(e) };
}

/** The worker's error as the daemon throws it: the same bus error name as if it had happened in-process. */
export function errorFromWire(w: WireError): Error {
  if (w.busName) return new BusError(w.busName, w.message);
  if (w.syscall !== undefined && w.errno !== undefined) {
    const e = new SyscallError(w.syscall, w.errno, w.path);
    e.message = w.message;
    return e;
  }
  if (w.code) return new SdError(w.code, w.message);
  return new SdError('EIO', `Worker failed: ${w.message}`);
}

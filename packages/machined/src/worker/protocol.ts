import {
  decodeWire,
  encodeWire,
  type WireError as SysWireError,
  errorFromWire as sysErrorFromWire,
  errorToWire as sysErrorToWire,
} from '@sd/sys';
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

/** sys's wire error, with the bus error name a pool method failed with. */
export interface WireError extends SysWireError {
  busName?: string;
}

export type WorkerReply = { ok: true; value?: unknown } | { ok: false; error: WireError };

export const encode = encodeWire;
export const decode = decodeWire;

export function errorToWire(e: unknown): WireError {
  if (e instanceof BusError) return { message: e.message, busName: e.busName, code: e.code };
  return sysErrorToWire(e);
}

/** The worker's error as the daemon throws it: the same bus error name as if it had happened in-process. */
export function errorFromWire(w: WireError): Error {
  if (w.busName) return new BusError(w.busName, w.message);
  return sysErrorFromWire(w, 'Worker');
}

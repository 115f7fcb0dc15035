import { SdError, SyscallError } from '../errors.js';

/**
 * The copy helper's messages (helper.ts, helper-main.ts): one JSON text per
 * SOCK_SEQPACKET message, bigints as {"$bigint": "…"}; a job's fds ride
 * along as SCM_RIGHTS. The helper's end of the socket is its fd 3.
 */

export const HELPER_SOCKET_FD = 3;

export interface Job {
  id: number;
  kind: string;
  args: unknown;
}

export interface WireError {
  message: string;
  code?: string;
  syscall?: string;
  errno?: number;
  path?: string;
}

export type JobReply =
  | { id: number; ok: true; value?: unknown }
  | { id: number; ok: false; error: WireError };

/** What a job kind does with its arguments and fds (the fds are the job's: closed after it). */
export type JobRunner = (args: unknown, fds: number[], aborted: () => boolean) => unknown | Promise<unknown>;

export const encodeJob = (v: unknown): string =>
  JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? { $bigint: x.toString() } : x));

export const decodeJob = <T>(s: string): T =>
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

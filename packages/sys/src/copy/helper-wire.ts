import type { WireError } from '../wire.js';

/**
 * The copy helper's messages (helper.ts, helper-main.ts): one JSON text per
 * SOCK_SEQPACKET message (encodeWire, ../wire.ts); a job's fds ride
 * along as SCM_RIGHTS. The helper's end of the socket is its fd 3.
 */

export const HELPER_SOCKET_FD = 3;

export interface Job {
  id: number;
  kind: string;
  args: unknown;
}

export type JobReply =
  | { id: number; ok: true; value?: unknown }
  | { id: number; ok: false; error: WireError };

/** What a job kind does with its arguments and fds (the fds are the job's: closed after it). */
export type JobRunner = (args: unknown, fds: number[], aborted: () => boolean) => unknown | Promise<unknown>;

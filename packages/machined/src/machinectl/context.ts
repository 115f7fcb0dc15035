import type { Options } from './args.js';
import type { Machine1 } from './client.js';

/** What a verb gets: the bus, the options, and where to write. Verbs return the exit status. */
export interface VerbContext {
  bus: Machine1;
  options: Options;
  out: (text: string) => void;
  err: (text: string) => void;
  color: boolean;
  /** For verbs that attach the terminal (shell, login): stdin/stdout fds. */
  stdinFd: number;
  stdoutFd: number;
}

export type Verb = (ctx: VerbContext, args: string[]) => Promise<number>;

/** The message of a failed call, as systemd prints it: "Failed to X: <bus message>". */
export function failed(ctx: VerbContext, what: string, e: unknown): number {
  const msg = e instanceof Error ? e.message : String(e);
  ctx.err(`${what}: ${msg}\n`);
  return 1;
}

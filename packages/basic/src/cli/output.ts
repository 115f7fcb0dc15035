import { isatty, sleepSync, writeSome } from '@sd/sys';
import type { OptionDef } from './options.js';
import { UsageError } from './options.js';

/** systemd's --json= modes; "off" is the table. */
export type JsonMode = 'pretty' | 'short' | 'off';

export function parseJsonMode(value: string | undefined): JsonMode {
  if (value === 'pretty' || value === 'short' || value === 'off') return value;
  if (value === 'help') throw new UsageError('--json= takes one of: short, pretty, off');
  throw new UsageError(`Unknown argument to --json=: ${value ?? '(none)'}`);
}

export function formatJson(value: unknown, mode: Exclude<JsonMode, 'off'>): string {
  const replacer = (_k: string, v: unknown) => (typeof v === 'bigint' ? Number(v) : v);
  return `${JSON.stringify(value, replacer, mode === 'pretty' ? 2 : undefined)}\n`;
}

/**
 * Writes `text` to `fd` (1 or 2) at once, as process.stdout does for files,
 * pipes and terminals on Linux, without creating process.stdout: its
 * stream modules (and node:tty's node:net) cost a CLI's start ~2-4 ms of
 * CPU. A non-blocking pipe that is full is waited out.
 */
export function writeFd(fd: number, text: string): void {
  let buf = Buffer.from(text);
  while (buf.length > 0) {
    const n = writeSome(fd, buf);
    if (n < 0) sleepSync(1);
    else buf = buf.subarray(n);
  }
}

/** Colour only on a terminal and never with $NO_COLOR set (no-color.org), or with SYSTEMD_COLORS=0. */
export function useColor(fd = 1, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.SYSTEMD_COLORS === '0' || env.SYSTEMD_COLORS === 'false') return false;
  if (env.TERM === 'dumb') return false;
  return isatty(fd);
}

/** The output options systemd's listing tools share, for a context with these fields. */
export interface OutputFlags {
  json: JsonMode;
  legend: boolean;
  pager: boolean;
}

export function outputOptions<C extends { output: OutputFlags }>(): OptionDef<C>[] {
  return [
    {
      long: 'json',
      arg: 'required',
      value: 'MODE',
      help: 'Output as JSON (pretty, short, off)',
      apply: (c, v) => {
        c.output.json = parseJsonMode(v);
      },
    },
    {
      long: 'no-legend',
      arg: 'none',
      help: 'Do not show the headers and footers',
      apply: (c) => {
        c.output.legend = false;
      },
    },
    {
      long: 'no-pager',
      arg: 'none',
      help: 'Do not pipe output into a pager',
      apply: (c) => {
        c.output.pager = false;
      },
    },
  ];
}

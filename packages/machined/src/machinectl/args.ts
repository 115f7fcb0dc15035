import {
  parseBoolean as basicParseBoolean,
  parseSignal as basicParseSignal,
  parseSize as basicParseSize,
  type JsonMode,
  type OptionDef,
  parseCommandLine,
  parseJsonMode,
  refusedTransportOptions,
  UsageError,
} from '@sd/basic';
import { isatty } from '@sd/sys';

/**
 * machinectl's command line on @sd/basic's option tables, parsed the way
 * systemd's is: options may come anywhere before the verb's arguments
 * (getopt permutes), `--` ends them, and `shell NAME COMMAND...` leaves the
 * command's own options alone.
 */

export { type JsonMode, UsageError };

export interface Options {
  help: boolean;
  version: boolean;
  noPager: boolean;
  noLegend: boolean;
  all: boolean;
  properties: string[];
  value: boolean;
  full: boolean;
  quiet: boolean;
  killWhom: string | undefined;
  signal: string | undefined;
  readOnly: boolean;
  mkdir: boolean;
  force: boolean;
  json: JsonMode;
  uid: string | undefined;
  setenv: string[];
  /** Transfer verbs (verbs-transfers.ts). */
  verify?: string;
  format?: string;
  /** pull-tar/pull-raw --keep-download=BOOL (systemd's machinectl pulls without keeping: default no). */
  keepDownload?: boolean;
}

export interface ParsedArgs {
  options: Options;
  verb: string;
  args: string[];
}

const defaults = (): Options => ({
  help: false,
  version: false,
  noPager: false,
  noLegend: false,
  all: false,
  properties: [],
  value: false,
  full: false,
  quiet: false,
  killWhom: undefined,
  signal: undefined,
  readOnly: false,
  mkdir: false,
  force: false,
  json: 'off',
  uid: undefined,
  setenv: [],
});

const flag = (long: string, set: (o: Options) => void, short?: string): OptionDef<Options> => ({
  long,
  arg: 'none',
  apply: set,
  ...(short ? { short } : {}),
});
const value = (long: string, set: (o: Options, v: string) => void, short?: string): OptionDef<Options> => ({
  long,
  arg: 'required',
  apply: (o, v) => set(o, v as string),
  ...(short ? { short } : {}),
});
const properties = (o: Options, v: string) => o.properties.push(...v.split(',').filter(Boolean));

/** The option table (the help text lives in main.ts, with the verbs). */
export const OPTIONS: OptionDef<Options>[] = [
  flag('no-pager', (o) => {
    o.noPager = true;
  }),
  flag('no-legend', (o) => {
    o.noLegend = true;
  }),
  flag('no-ask-password', () => {}),
  value('property', properties, 'p'),
  {
    short: 'P',
    arg: 'required',
    apply: (o, v) => {
      o.value = true;
      properties(o, v as string);
    },
  },
  flag(
    'all',
    (o) => {
      o.all = true;
    },
    'a',
  ),
  flag('value', (o) => {
    o.value = true;
  }),
  flag(
    'full',
    (o) => {
      o.full = true;
    },
    'l',
  ),
  value('kill-whom', (o, v) => {
    o.killWhom = v;
  }),
  value(
    'signal',
    (o, v) => {
      o.signal = v;
    },
    's',
  ),
  value('uid', (o, v) => {
    o.uid = v;
  }),
  value(
    'setenv',
    (o, v) => {
      o.setenv.push(v);
    },
    'E',
  ),
  flag('read-only', (o) => {
    o.readOnly = true;
  }),
  flag('mkdir', (o) => {
    o.mkdir = true;
  }),
  flag('force', (o) => {
    o.force = true;
  }),
  flag(
    'quiet',
    (o) => {
      o.quiet = true;
    },
    'q',
  ),
  value('verify', (o, v) => {
    o.verify = v;
  }),
  value('format', (o, v) => {
    o.format = v;
  }),
  value('json', (o, v) => {
    o.json = parseJsonMode(v);
  }),
  // -j: --json=pretty on a terminal, short otherwise.
  {
    short: 'j',
    arg: 'none',
    apply: (o) => {
      o.json = isatty(1) ? 'pretty' : 'short';
    },
  },
  // systemd's machinectl reaches a remote host over ssh (-H) or a container's (-M); ours does
  // neither, and says so rather than quietly talking to the local machined.
  ...refusedTransportOptions<Options>('machinectl'),
  // importctl's option, here too: keep the verified download as a hidden read-only copy.
  value('keep-download', (o, v) => {
    o.keepDownload = parseBoolean(v);
  }),
];

export function parseArgs(argv: string[]): ParsedArgs {
  const o = defaults();
  const p = parseCommandLine(OPTIONS, argv, o, {
    permute: true,
    stopWhen: (pos) => pos.length >= 2 && pos[0] === 'shell',
  });
  o.help = p.help;
  o.version = p.version;
  const [verb = 'list', ...args] = p.positionals;
  return { options: o, verb, args };
}

/** The transfer verbs and their argument counts, shared by machinectl and importctl. */
export const TRANSFER_VERBS: Record<string, [number, number]> = {
  'pull-tar': [1, 2],
  'pull-raw': [1, 2],
  'import-tar': [0, 2],
  'import-raw': [0, 2],
  'import-fs': [1, 2],
  'export-tar': [1, 2],
  'export-raw': [1, 2],
  'list-transfers': [0, 0],
  'cancel-transfer': [1, Infinity],
};

/** Verbs, the number of arguments they take (min, max; Infinity for any), like systemd's verb table. */
export const VERBS: Record<string, [number, number]> = {
  list: [0, 0],
  status: [1, Infinity],
  show: [0, Infinity],
  login: [0, 1],
  shell: [0, Infinity],
  poweroff: [1, Infinity],
  reboot: [1, Infinity],
  terminate: [1, Infinity],
  kill: [1, Infinity],
  stop: [1, Infinity],
  start: [1, Infinity],
  bind: [2, 3],
  'copy-to': [2, 3],
  'copy-from': [2, 3],
  'list-images': [0, 0],
  'image-status': [1, Infinity],
  'show-image': [0, Infinity],
  clone: [2, 2],
  rename: [2, 2],
  remove: [1, Infinity],
  'read-only': [1, 2],
  'set-limit': [1, 2],
  clean: [0, 0],
  ...TRANSFER_VERBS,
};

export function checkVerb(p: ParsedArgs): void {
  const spec = VERBS[p.verb];
  if (!spec) throw new UsageError(`Unknown command verb '${p.verb}'.`);
  const [min, max] = spec;
  if (p.args.length < min) throw new UsageError(`Too few arguments.`);
  if (p.args.length > max) throw new UsageError(`Too many arguments.`);
}

/** parse_boolean(), as a usage error. */
export function parseBoolean(v: string): boolean {
  return asUsage(() => basicParseBoolean(v));
}

/** A size like systemd's parse_size with base 1024 ("10G", "512M", "1.5G"); "-"/"infinity" → 2^64-1. */
export function parseSize(v: string): bigint {
  return asUsage(() => basicParseSize(v));
}

/** A signal by name (SIGTERM, TERM, RTMIN+4) or number. */
export function parseSignal(v: string): number {
  return asUsage(() => basicParseSignal(v));
}

function asUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new UsageError((e as Error).message, { cause: e });
  }
}

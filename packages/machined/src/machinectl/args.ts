/**
 * machinectl's command line, parsed the way systemd's is: options may come
 * anywhere before the verb's arguments (getopt permutes), `--` ends them,
 * and a verb takes its arguments positionally.
 */

export type JsonMode = 'pretty' | 'short' | 'off';

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
  host: string | undefined;
  /** Transfer verbs (verbs-transfers.ts). */
  verify?: string;
  format?: string;
  keepDownload?: boolean;
}

export interface ParsedArgs {
  options: Options;
  verb: string;
  args: string[];
}

export class UsageError extends Error {}

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
  host: undefined,
});

type Setter = (o: Options, v: string) => void;
/** Long options that take a value, and their short forms. */
const withValue: Record<string, Setter> = {
  property: (o, v) => o.properties.push(...v.split(',').filter(Boolean)),
  'kill-whom': (o, v) => {
    o.killWhom = v;
  },
  signal: (o, v) => {
    o.signal = v;
  },
  json: (o, v) => {
    if (v !== 'pretty' && v !== 'short' && v !== 'off')
      throw new UsageError(`Unknown argument to --json=: ${v}`);
    o.json = v;
  },
  uid: (o, v) => {
    o.uid = v;
  },
  setenv: (o, v) => o.setenv.push(v),
  host: (o, v) => {
    o.host = v;
  },
  verify: (o, v) => {
    o.verify = v;
  },
  format: (o, v) => {
    o.format = v;
  },
};
const flags: Record<string, (o: Options) => void> = {
  help: (o) => {
    o.help = true;
  },
  version: (o) => {
    o.version = true;
  },
  'no-pager': (o) => {
    o.noPager = true;
  },
  'no-legend': (o) => {
    o.noLegend = true;
  },
  'no-ask-password': () => {},
  all: (o) => {
    o.all = true;
  },
  value: (o) => {
    o.value = true;
  },
  full: (o) => {
    o.full = true;
  },
  quiet: (o) => {
    o.quiet = true;
  },
  'read-only': (o) => {
    o.readOnly = true;
  },
  mkdir: (o) => {
    o.mkdir = true;
  },
  force: (o) => {
    o.force = true;
  },
  'keep-download': (o) => {
    o.keepDownload = true;
  },
};
const shortFlags: Record<string, string> = { h: 'help', a: 'all', l: 'full', q: 'quiet' };
const shortValues: Record<string, string> = { p: 'property', s: 'signal', E: 'setenv', H: 'host' };

export function parseArgs(argv: string[]): ParsedArgs {
  const o = defaults();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    // The command of `shell NAME CMD...` keeps its own options.
    if (positional.length >= 2 && positional[0] === 'shell') {
      positional.push(...argv.slice(i));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const inline = eq < 0 ? undefined : a.slice(eq + 1);
      if (name === 'json' && inline === undefined)
        throw new UsageError('--json= requires an argument (pretty, short, off)');
      if (withValue[name]) {
        const v = inline ?? argv[++i];
        if (v === undefined) throw new UsageError(`option '--${name}' requires an argument`);
        withValue[name](o, v);
      } else if (flags[name] && inline === undefined) {
        flags[name](o);
      } else {
        throw new UsageError(`unrecognized option '${a}'`);
      }
    } else if (a.length > 1 && a.startsWith('-')) {
      for (let j = 1; j < a.length; j++) {
        const ch = a[j]!;
        if (ch === 'P') {
          o.value = true;
          const v = a.length > j + 1 ? a.slice(j + 1) : argv[++i];
          if (v === undefined) throw new UsageError(`option requires an argument -- 'P'`);
          withValue.property!(o, v);
          break;
        }
        if (ch === 'j') {
          o.json = process.stdout.isTTY ? 'pretty' : 'short';
          continue;
        }
        const sv = shortValues[ch];
        if (sv) {
          const v = a.length > j + 1 ? a.slice(j + 1) : argv[++i];
          if (v === undefined) throw new UsageError(`option requires an argument -- '${ch}'`);
          withValue[sv]!(o, v);
          break;
        }
        const sf = shortFlags[ch];
        if (!sf) throw new UsageError(`invalid option -- '${ch}'`);
        flags[sf]!(o);
      }
    } else {
      positional.push(a);
    }
  }
  const [verb = 'list', ...args] = positional;
  return { options: o, verb, args };
}

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

export function checkVerb(p: ParsedArgs): void {
  const spec = VERBS[p.verb];
  if (!spec) throw new UsageError(`Unknown command verb '${p.verb}'.`);
  const [min, max] = spec;
  if (p.args.length < min) throw new UsageError(`Too few arguments.`);
  if (p.args.length > max) throw new UsageError(`Too many arguments.`);
}

/** Parses a boolean as systemd does (1/yes/y/true/t/on, 0/no/n/false/f/off). */
export function parseBoolean(v: string): boolean {
  const s = v.toLowerCase();
  if (['1', 'yes', 'y', 'true', 't', 'on'].includes(s)) return true;
  if (['0', 'no', 'n', 'false', 'f', 'off'].includes(s)) return false;
  throw new UsageError(`Failed to parse boolean argument: ${v}`);
}

const UNITS: Record<string, bigint> = {
  '': 1n,
  B: 1n,
  K: 1n << 10n,
  M: 1n << 20n,
  G: 1n << 30n,
  T: 1n << 40n,
  P: 1n << 50n,
  E: 1n << 60n,
};

/** A size like systemd's parse_size with base 1024 ("10G", "512M", "1.5G"); "-"/"infinity" → 2^64-1. */
export function parseSize(v: string): bigint {
  if (v === '-' || v === 'infinity' || v === 'none') return 0xffff_ffff_ffff_ffffn;
  const m = /^(\d+)(?:\.(\d+))?\s*([KMGTPE]?)(?:i?B)?$/i.exec(v.trim());
  if (!m) throw new UsageError(`Failed to parse size: ${v}`);
  const unit = UNITS[m[3]!.toUpperCase()]!;
  let bytes = BigInt(m[1]!) * unit;
  if (m[2]) bytes += (BigInt(m[2]) * unit) / 10n ** BigInt(m[2].length);
  return bytes;
}

const SIGNALS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  PWR: 30,
  SYS: 31,
};

/** A signal by name (SIGTERM, TERM, RTMIN+4) or number. */
export function parseSignal(v: string): number {
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    if (n >= 1 && n <= 64) return n;
  }
  const s = v.toUpperCase().replace(/^SIG/, '');
  if (SIGNALS[s]) return SIGNALS[s];
  const rt = /^RTM(IN|AX)([+-]\d+)?$/.exec(s);
  if (rt) {
    const n = (rt[1] === 'IN' ? 34 : 64) + Number(rt[2] ?? 0);
    if (n >= 34 && n <= 64) return n;
  }
  throw new UsageError(`Failed to parse signal string ${v}.`);
}

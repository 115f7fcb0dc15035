import { SdError } from '@sd/sys';

/**
 * One command-line parser for every sd CLI, driven by a table of options
 * and compatible with the getopt_long() systemd's tools use: `--opt=value`,
 * `--opt value`, `-Xvalue`, `-X value`, bundled short flags (`-qb`), `--`
 * ending the options, and, where the tool allows it (machinectl, importctl),
 * options after positional arguments (getopt's permutation). Unknown
 * options and missing or unexpected values are UsageErrors worded as
 * getopt words them.
 */

/** A mistake on the command line: one line naming the option, exit status 1. */
export class UsageError extends SdError {
  constructor(message: string, options?: ErrorOptions) {
    super('EINVAL', message, options);
  }
}

export type ArgKind = 'none' | 'required' | 'optional';

export interface OptionDef<C> {
  /** The long name; a short-only option (machinectl's -P) has none. */
  long?: string;
  short?: string;
  arg: ArgKind;
  /** The value's name in --help (`PATH`, `MODE`); defaults to VALUE. */
  value?: string;
  /** The --help line; an option without one is accepted but not listed. */
  help?: string;
  /** Set on an option the tool knows but cannot honour (refusedOption): why, as its error says. */
  refused?: string;
  apply(ctx: C, value: string | undefined, name: string): void;
}

/** The names and --help text of a table entry; the builders below add its kind and action. */
export type OptionSpec = Pick<OptionDef<never>, 'long' | 'short' | 'value' | 'help'>;

/** A flag (`--long`, `-s`): no value. */
export function flagOption<C>(spec: OptionSpec, set: (ctx: C, name: string) => void): OptionDef<C> {
  return { ...spec, arg: 'none', apply: (c, _v, n) => set(c, n) };
}

/** An option that needs a value (`--long=V`, `--long V`, `-sV`, `-s V`). */
export function valueOption<C>(
  spec: OptionSpec,
  set: (ctx: C, value: string, name: string) => void,
): OptionDef<C> {
  return { ...spec, arg: 'required', apply: (c, v, n) => set(c, v as string, n) };
}

/**
 * An option of systemd's tool that this one cannot honour: accepted by the
 * parser only to fail with one line naming it and why, so that it is never
 * parsed and then silently ignored.
 */
export function refusedOption<C>(spec: OptionSpec & { arg?: ArgKind }, why: string): OptionDef<C> {
  return {
    arg: 'none',
    ...spec,
    refused: why,
    apply: (_c, _v, n) => {
      throw new UsageError(`${n}: ${why}`);
    },
  };
}

export interface ParseConfig {
  /** Options may follow positional arguments (getopt permutes); else the first positional ends the options. */
  permute?: boolean;
  /**
   * With permute: options end once the positionals so far satisfy this (machinectl's
   * `shell NAME COMMAND...`: the command keeps its own options).
   */
  stopWhen?: (positionals: readonly string[]) => boolean;
}

export interface Parsed {
  positionals: string[];
  help: boolean;
  version: boolean;
}

/** -h/--help and --version: every CLI has them, so the parser handles them itself. */
const BUILTIN = new Set(['help', 'version']);

export function parseCommandLine<C>(
  defs: readonly OptionDef<C>[],
  argv: readonly string[],
  ctx: C,
  config: ParseConfig = {},
): Parsed {
  const byLong = new Map(defs.filter((d) => d.long).map((d) => [d.long as string, d]));
  const byShort = new Map(defs.filter((d) => d.short).map((d) => [d.short as string, d]));
  const out: Parsed = { positionals: [], help: false, version: false };
  const apply = (d: OptionDef<C>, value: string | undefined, name: string) => {
    try {
      d.apply(ctx, value, name);
    } catch (e) {
      if (e instanceof SdError) throw e;
      throw new UsageError(`${name}: ${(e as Error).message}`, { cause: e });
    }
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i] as string;
    if (config.stopWhen?.(out.positionals)) break;
    if (a === '--') {
      i++;
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const inline = eq < 0 ? undefined : a.slice(eq + 1);
      if (BUILTIN.has(name) && !byLong.has(name)) {
        if (inline !== undefined) throw new UsageError(`option '--${name}' doesn't allow an argument`);
        if (name === 'help') out.help = true;
        else out.version = true;
        continue;
      }
      const d = byLong.get(name);
      if (!d) throw new UsageError(`unrecognized option '--${name}'`);
      if (d.arg === 'none') {
        if (inline !== undefined) throw new UsageError(`option '--${name}' doesn't allow an argument`);
        apply(d, undefined, `--${name}`);
      } else if (inline !== undefined || d.arg === 'optional') {
        apply(d, inline, `--${name}`);
      } else {
        const v = argv[++i];
        if (v === undefined) throw new UsageError(`option '--${name}' requires an argument`);
        apply(d, v, `--${name}`);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const ch = a[j] as string;
        const d = byShort.get(ch);
        if (!d) {
          if (ch === 'h') {
            out.help = true;
            continue;
          }
          throw new UsageError(`invalid option -- '${ch}'`);
        }
        if (d.arg === 'none') {
          apply(d, undefined, `-${ch}`);
          continue;
        }
        const rest = a.slice(j + 1);
        if (rest.length || d.arg === 'optional') {
          apply(d, rest.length ? rest : undefined, `-${ch}`);
        } else {
          const v = argv[++i];
          if (v === undefined) throw new UsageError(`option requires an argument -- '${ch}'`);
          apply(d, v, `-${ch}`);
        }
        break;
      }
      continue;
    }
    if (!config.permute) break;
    out.positionals.push(a);
  }
  out.positionals.push(...argv.slice(i));
  return out;
}

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../../tools/test/fuzz.js';
import { formatHelp, formatOption } from './help.js';
import { type OptionDef, parseCommandLine, UsageError } from './options.js';

interface Ctx {
  dir?: string;
  quiet: boolean;
  boot: boolean;
  volatile?: string;
  props: string[];
}
const defs: OptionDef<Ctx>[] = [
  {
    long: 'directory',
    short: 'D',
    arg: 'required',
    value: 'PATH',
    help: 'Root directory',
    apply: (c, v) => (c.dir = v),
  },
  { long: 'quiet', short: 'q', arg: 'none', help: 'Quiet', apply: (c) => (c.quiet = true) },
  { long: 'boot', short: 'b', arg: 'none', help: 'Boot', apply: (c) => (c.boot = true) },
  {
    long: 'volatile',
    arg: 'optional',
    value: 'MODE',
    help: 'Volatile',
    apply: (c, v) => (c.volatile = v ?? 'yes'),
  },
  { long: 'property', short: 'p', arg: 'required', apply: (c, v) => c.props.push(v as string) },
];
const fresh = (): Ctx => ({ quiet: false, boot: false, props: [] });

describe('parseCommandLine (getopt_long compatible)', () => {
  it('takes every spelling of a value', () => {
    for (const argv of [['-D/x'], ['-D', '/x'], ['--directory=/x'], ['--directory', '/x']]) {
      const c = fresh();
      parseCommandLine(defs, argv, c);
      expect(c.dir).toBe('/x');
    }
  });

  it('bundles short flags and ends a bundle at a value', () => {
    const c = fresh();
    const p = parseCommandLine(defs, ['-qbD/t', 'cmd', '-q'], c);
    expect(c).toMatchObject({ quiet: true, boot: true, dir: '/t' });
    // The first positional ends the options without permutation: -q belongs to the command.
    expect(p.positionals).toEqual(['cmd', '-q']);
  });

  it('permutes when asked, and -- ends the options', () => {
    const c = fresh();
    const p = parseCommandLine(defs, ['list', '-q', 'x', '--', '-b'], c, { permute: true });
    expect(p.positionals).toEqual(['list', 'x', '-b']);
    expect(c.quiet).toBe(true);
    expect(c.boot).toBe(false);
  });

  it('takes an optional value only inline', () => {
    const c = fresh();
    const p = parseCommandLine(defs, ['--volatile', 'state'], c);
    expect(c.volatile).toBe('yes');
    expect(p.positionals).toEqual(['state']);
    parseCommandLine(defs, ['--volatile=state'], c);
    expect(c.volatile).toBe('state');
  });

  it('handles --help, -h and --version itself', () => {
    expect(parseCommandLine(defs, ['-qh'], fresh())).toMatchObject({ help: true });
    expect(parseCommandLine(defs, ['--version'], fresh())).toMatchObject({ version: true });
  });

  it.each([
    [['--bogus'], "unrecognized option '--bogus'"],
    [['-z'], "invalid option -- 'z'"],
    [['--directory'], "option '--directory' requires an argument"],
    [['-D'], "option requires an argument -- 'D'"],
    [['--quiet=1'], "option '--quiet' doesn't allow an argument"],
    [['--help=x'], "option '--help' doesn't allow an argument"],
  ])('refuses %j as getopt words it', (argv, message) => {
    expect(() => parseCommandLine(defs, argv, fresh())).toThrow(new UsageError(message));
  });

  it('wraps a non-SdError thrown by an option as a UsageError naming the option', () => {
    const bad: OptionDef<Ctx>[] = [{ long: 'n', arg: 'required', apply: () => JSON.parse('{') }];
    expect(() => parseCommandLine(bad, ['--n=1'], fresh())).toThrow(/^--n: /);
  });

  it('never throws anything but a UsageError, and keeps every positional (property)', () => {
    const token = fc.oneof(
      fc.constantFrom(
        '-D',
        '-q',
        '-b',
        '-qb',
        '--boot',
        '--volatile',
        '--volatile=x',
        '--',
        '-',
        '--directory',
      ),
      fc.string({ maxLength: 6 }),
    );
    fc.assert(
      fc.property(fc.array(token, { maxLength: 12 }), fc.boolean(), (argv, permute) => {
        try {
          const p = parseCommandLine(defs, argv, fresh(), { permute });
          for (const x of p.positionals) expect(argv).toContain(x);
        } catch (e) {
          expect(e).toBeInstanceOf(UsageError);
        }
      }),
      { numRuns: fuzzRuns(2000), seed: 1 },
    );
  });
});

describe('formatHelp', () => {
  it('lists the table, aligned, and only options with help', () => {
    const text = formatHelp({ usage: ['x [OPTIONS...]'], summary: 'Does x.' }, defs as never);
    expect(text).toContain('  -D --directory=PATH       Root directory\n');
    expect(text).toContain('     --volatile[=MODE]      Volatile\n');
    expect(text).toContain('  -h --help                 Show this help\n');
    expect(text).not.toContain('--property');
  });
});

describe('formatOption', () => {
  it('lists a short-only flag without a value and a short-only valued option with one', () => {
    expect(formatOption({ short: 'N', arg: 'none', help: 'No' }).trimEnd()).toBe(`  -N${' '.repeat(24)}No`);
    expect(formatOption({ short: 'P', arg: 'required', value: 'NAME', help: 'P' })).toMatch(
      /^ {2}-P NAME +P$/,
    );
  });
});

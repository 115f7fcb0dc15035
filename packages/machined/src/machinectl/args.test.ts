import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError, VERBS } from './args.js';
import { VERB_NAMES } from './verb-names.js';

describe('machinectl options that would only be parsed and ignored are refused', () => {
  it.each([
    [['-H', 'root@far', 'list']],
    [['--host=far', 'list']],
    [['-M', 'inner', 'list']],
    [['--machine=inner', 'list']],
  ])('%j', (argv) => {
    expect(() => parseArgs(argv)).toThrow(UsageError);
    expect(() => parseArgs(argv)).toThrow(/is not supported by this machinectl/);
  });
});

describe('machinectl option parsing', () => {
  it('-P NAME is --value --property=NAME; options may follow the verb', () => {
    const p = parseArgs(['show', '-P', 'Name', 'x', '--no-legend']);
    expect(p).toMatchObject({ verb: 'show', args: ['x'] });
    expect(p.options).toMatchObject({ value: true, properties: ['Name'], noLegend: true });
  });
  it('leaves the options of the command of `shell NAME COMMAND...` alone', () => {
    const p = parseArgs(['-q', 'shell', 'm', '/bin/ls', '-l', '--all']);
    expect(p).toMatchObject({ verb: 'shell', args: ['m', '/bin/ls', '-l', '--all'] });
    expect(p.options.all).toBe(false);
  });
  it('refuses a bad --json= value', () => {
    expect(() => parseArgs(['--json=yaml', 'list'])).toThrow(/Unknown argument to --json=: yaml/);
  });
});

describe("the bin's verb names (one code cache per verb)", () => {
  it('are exactly the verbs machinectl takes', () => {
    expect([...VERB_NAMES].sort()).toEqual(Object.keys(VERBS).sort());
  });
});

import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from './args.js';

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

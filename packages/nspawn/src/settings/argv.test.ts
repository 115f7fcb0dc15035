import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../../tools/test/fuzz.js';
import { NspawnError } from '../errors.js';
import { parseArgv, parseSignal } from './argv.js';

describe('parseArgv', () => {
  it('takes systemd-nspawn option forms and stops at the command', () => {
    const { settings } = parseArgv(['-D', '/srv/c', '-M', 'web', '-bq', '--volatile', '--', 'arg']);
    expect(settings).toMatchObject({
      directory: '/srv/c',
      machine: 'web',
      boot: true,
      quiet: true,
      volatile: 'yes',
    });
    expect(settings.parameters).toEqual(['arg']);
    const b = parseArgv(['-D/srv/c', '--machine=web', 'sh', '-c', '-x', '--not-ours']).settings;
    expect(b.directory).toBe('/srv/c');
    expect(b.parameters).toEqual(['sh', '-c', '-x', '--not-ours']);
  });

  it('parses values like systemd', () => {
    const s = parseArgv([
      '--private-users=1000000:65536',
      '--kill-signal=SIGRTMIN+3',
      '-E',
      'A=1',
      '-E',
      'A=2',
      '--uuid=0123456789ABCDEF0123456789abcdef',
      '--console=read-only',
      '--register=no',
      '--volatile=state',
    ]).settings;
    expect(s.privateUsers).toEqual({ mode: 'fixed', shift: 1000000, range: 65536 });
    expect(s.killSignal).toBe(37);
    expect(s.environment).toEqual(['A=2']);
    expect(s.uuid).toBe('0123456789abcdef0123456789abcdef');
    expect(s.console).toBe('read-only');
    expect(s.register).toBe(false);
    expect(s.volatile).toBe('state');
    expect(parseArgv(['-U']).settings.privateUsers.mode).toBe('pick');
    expect(parseArgv(['--private-users']).settings.privateUsers.mode).toBe('pick');
  });

  it('names what is wrong', () => {
    expect(() => parseArgv(['--bogus'])).toThrow("unrecognized option '--bogus'");
    expect(() => parseArgv(['-Z'])).toThrow("invalid option -- 'Z'");
    expect(() => parseArgv(['-D'])).toThrow("option requires an argument -- 'D'");
    expect(() => parseArgv(['--boot=yes'])).toThrow("doesn't allow an argument");
    expect(() => parseArgv(['--console=tty'])).toThrow(/Invalid --console value: tty/);
    expect(() => parseArgv(['--uuid=xyz'])).toThrow(/Invalid UUID/);
    expect(() => parseArgv(['--chdir=rel'])).toThrow(/not an absolute path/);
    expect(() => parseArgv(['--private-users=4294967295:2'])).toThrow(/32 bits/);
    expect(() => parseSignal('SIGNOPE')).toThrow(/Unknown signal/);
  });

  it('yields settings or an NspawnError for any argv', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(fc.string(), fc.constantFrom('-D', '--volatile', '-E', '--uuid', '-U', '--', '-bq')),
        ),
        (argv) => {
          try {
            parseArgv(argv);
          } catch (e) {
            expect(e).toBeInstanceOf(NspawnError);
          }
        },
      ),
      { numRuns: fuzzRuns(2000) },
    );
  });
});

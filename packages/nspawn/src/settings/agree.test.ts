import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../../tools/test/fuzz.js';
import { NspawnError } from '../errors.js';
import { HELP, OPTIONS, parseArgv } from './argv.js';
import { parseSettingsFile } from './file.js';
import { defaultSettings, type Settings } from './settings.js';

// Oracles for the two front ends of one Settings: a value given as `--opt=v`
// and as `Key=v` in a .nspawn file must mean the same (or both be refused),
// and both must follow systemd-nspawn(1) / systemd.nspawn(5).

type Outcome = { ok: unknown } | { error: string };

function viaArgv(opt: string, value: string, field: keyof Settings): Outcome {
  try {
    return { ok: parseArgv([`--${opt}=${value}`]).settings[field] };
  } catch (e) {
    if (!(e instanceof NspawnError)) throw e;
    return { error: e.message };
  }
}

function viaFile(section: string, key: string, value: string, field: keyof Settings): Outcome {
  try {
    return { ok: parseSettingsFile(`[${section}]\n${key}=${value}\n`, 't.nspawn').settings[field] };
  } catch (e) {
    if (!(e instanceof NspawnError)) throw e;
    return { error: e.message };
  }
}

const chars = (alphabet: string, max = 24) =>
  fc.string({ unit: fc.constantFrom(...alphabet), minLength: 0, maxLength: max });

const BOOLS = ['yes', 'no', 'true', 'false', '1', '0', 'on', 'off', 'y', 'n', 't', 'f', 'YES', 'maybe', ''];
const PATHISH = chars('/ab.:,\\+-=', 20);
const path = fc.oneof(PATHISH, fc.constantFrom('/', '/srv', '/a/../b', '/a//b/.', 'rel', '+/x', '/x\\:y'));

/** Each setting both front ends have, with values from its domain, its edges, and noise. */
const PAIRS: Array<{
  opt: string;
  section: string;
  key: string;
  field: keyof Settings;
  values: fc.Arbitrary<string>;
}> = [
  {
    opt: 'uuid',
    section: 'Exec',
    key: 'MachineID',
    field: 'uuid',
    values: fc.oneof(
      fc.uuid().map((u) => u),
      fc.uuid().map((u) => u.replaceAll('-', '')),
      fc.uuid().map((u) => u.toUpperCase()),
      fc.constantFrom(
        '00000000000000000000000000000000',
        '00000000-0000-0000-0000-000000000000',
        '0123-4567-89ab-cdef-0123-4567-89ab-cdef',
        '0123456789abcdef0123456789abcde',
      ),
      chars('0123456789abcdefX-', 40),
    ),
  },
  {
    opt: 'private-users',
    section: 'Exec',
    key: 'PrivateUsers',
    field: 'privateUsers',
    values: fc.oneof(
      fc.constantFrom(
        ...BOOLS,
        'pick',
        'identity',
        '4294967295:2',
        '4294901760:65535',
        '0:0',
        '65536:1',
        '1:',
      ),
      fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `${a}:${b}`),
      fc.nat().map(String),
      chars('0123456789:pick', 14),
    ),
  },
  {
    opt: 'private-users-ownership',
    section: 'Files',
    key: 'PrivateUsersOwnership',
    field: 'privateUsersOwnership',
    values: fc.oneof(
      fc.constantFrom('off', 'chown', 'map', 'auto', 'yes', 'Map', ''),
      chars('abcdefghijklmnopqrstuvwxyz'),
    ),
  },
  {
    opt: 'kill-signal',
    section: 'Exec',
    key: 'KillSignal',
    field: 'killSignal',
    values: fc.oneof(
      fc.constantFrom(
        'SIGTERM',
        'TERM',
        'term',
        'SIGRTMIN+3',
        'RTMIN',
        'RTMIN+30',
        'RTMIN+31',
        'SIGRTMAX',
        '0',
        '65',
        '9',
        '',
      ),
      fc.integer({ min: -2, max: 70 }).map(String),
      chars('SIGRTMINAX+0123456789', 12),
    ),
  },
  {
    opt: 'resolv-conf',
    section: 'Exec',
    key: 'ResolvConf',
    field: 'resolvConf',
    values: fc.oneof(
      fc.constantFrom('off', 'copy-host', 'bind-stub', 'auto', 'replace-uplink', 'copy', ''),
      chars('-abcdehiklnoprstuy'),
    ),
  },
  {
    opt: 'timezone',
    section: 'Exec',
    key: 'Timezone',
    field: 'timezone',
    values: fc.oneof(
      fc.constantFrom('off', 'copy', 'bind', 'symlink', 'delete', 'auto', 'Copy', ''),
      chars('abcdefhiklmnopsty'),
    ),
  },
  {
    opt: 'volatile',
    section: 'Files',
    key: 'Volatile',
    field: 'volatile',
    values: fc.oneof(fc.constantFrom(...BOOLS, 'state', 'overlay', 'State'), chars('aelostvy')),
  },
  {
    opt: 'no-new-privileges',
    section: 'Exec',
    key: 'NoNewPrivileges',
    field: 'noNewPrivileges',
    values: fc.constantFrom(...BOOLS),
  },
  {
    opt: 'notify-ready',
    section: 'Exec',
    key: 'NotifyReady',
    field: 'notifyReady',
    values: fc.constantFrom(...BOOLS),
  },
  { opt: 'chdir', section: 'Exec', key: 'WorkingDirectory', field: 'chdir', values: path },
  { opt: 'template', section: 'Files', key: 'Template', field: 'template', values: path },
  {
    opt: 'bind',
    section: 'Files',
    key: 'Bind',
    field: 'binds',
    values: fc.oneof(
      path,
      fc.constantFrom('/a:/b:norbind', '/a:/b:idmap,rbind', '/a::norbind', '/a:/b:bogus', ':/b', '/a:/b:c:d'),
    ),
  },
  {
    opt: 'bind-ro',
    section: 'Files',
    key: 'BindReadOnly',
    field: 'binds',
    values: fc.oneof(path, fc.constantFrom('/a:/b:norbind', '/a\\:b:/c')),
  },
  {
    opt: 'tmpfs',
    section: 'Files',
    key: 'TemporaryFileSystem',
    field: 'tmpfs',
    values: fc.oneof(path, fc.constantFrom('/t:mode=0700,size=1M', '/t\\:x:mode=1777', 'rel:mode=0')),
  },
  {
    opt: 'overlay',
    section: 'Files',
    key: 'Overlay',
    field: 'overlays',
    values: fc.oneof(path, fc.constantFrom('/a:/b:/c', '/a:/b', '/a:/b:/c:/d', '/a,x:/b:/c', '/a::/c')),
  },
  {
    opt: 'overlay-ro',
    section: 'Files',
    key: 'OverlayReadOnly',
    field: 'overlays',
    values: fc.oneof(path, fc.constantFrom('/a:/b', '/a')),
  },
  { opt: 'inaccessible', section: 'Files', key: 'Inaccessible', field: 'inaccessible', values: path },
  {
    opt: 'system-call-filter',
    section: 'Exec',
    key: 'SystemCallFilter',
    field: 'systemCallFilter',
    values: fc.oneof(
      fc.constantFrom('~mount', 'chmod fchmod', '@mount', '~@obsolete uname'),
      chars('abcdefmnotu~@ '),
    ),
  },
  {
    opt: 'hostname',
    section: 'Exec',
    key: 'Hostname',
    field: 'hostname',
    values: fc.oneof(
      fc.constantFrom('web', 'web.example.com', 'a'.repeat(64), '-x', 'x_y', 'ü', '.', 'a..b', 'with space'),
      chars('abc-._ü/', 70),
    ),
  },
  {
    opt: 'user',
    section: 'Exec',
    key: 'User',
    field: 'user',
    values: fc.oneof(
      fc.constantFrom('root', '0', 'nobody', '65534', '-1', 'a:b', 'x/y', '4294967295'),
      chars('abc019-_:/.', 40),
    ),
  },
  {
    opt: 'capability',
    section: 'Exec',
    key: 'Capability',
    field: 'capabilities',
    // One name per value: argv lists use commas, files spaces, so lists are compared below.
    values: fc.oneof(
      fc.constantFrom('CAP_NET_ADMIN', 'cap_sys_admin', 'all', 'CAP_BOGUS', 'NET_ADMIN', '38', ''),
      chars('CAP_NETADMSYS', 16),
    ),
  },
  {
    opt: 'drop-capability',
    section: 'Exec',
    key: 'DropCapability',
    field: 'dropCapabilities',
    values: fc.oneof(fc.constantFrom('CAP_CHOWN', 'all', 'CAP_BOGUS', ''), chars('CAP_HOWNSY', 16)),
  },
];

describe('the command line and .nspawn files agree', () => {
  for (const p of PAIRS) {
    it(`--${p.opt}= and ${p.key}= in [${p.section}]`, () => {
      fc.assert(
        fc.property(p.values, (value) => {
          // A file trims the value and continues a line ending in a backslash: those differ by syntax, not meaning.
          fc.pre(value === value.trim() && !value.endsWith('\\') && !value.includes('\n'));
          // An empty assignment resets a list in a file (unit-file syntax); an empty spec on the command line is refused.
          fc.pre(!(value === '' && Array.isArray(defaultSettings()[p.field])));
          const a = viaArgv(p.opt, value, p.field);
          const f = viaFile(p.section, p.key, value, p.field);
          expect(
            'error' in f,
            `${p.key}=${value}: ${JSON.stringify(f)} but --${p.opt}: ${JSON.stringify(a)}`,
          ).toBe('error' in a);
          // An empty assignment in a file resets a list; on the command line it is refused or adds nothing.
          if ('ok' in a && 'ok' in f) expect(f.ok).toEqual(a.ok);
        }),
        { numRuns: fuzzRuns(300) },
      );
    });
  }

  it('capability lists: commas on the command line, spaces (or commas) in a file', () => {
    const names = fc.array(
      fc.constantFrom('CAP_NET_ADMIN', 'CAP_SYS_TIME', 'CAP_CHOWN', 'CAP_BOGUS', 'all'),
      {
        minLength: 1,
        maxLength: 4,
      },
    );
    fc.assert(
      fc.property(names, (list) => {
        const a = viaArgv('capability', list.join(','), 'capabilities');
        const f = viaFile('Exec', 'Capability', list.join(' '), 'capabilities');
        expect('error' in f).toBe('error' in a);
        if ('ok' in a) expect(f).toEqual(a);
        else expect(list).toContain('CAP_BOGUS');
      }),
    );
  });
});

describe('systemd-nspawn(1) semantics', () => {
  const s = (...argv: string[]) => parseArgv(argv).settings;
  const bad = (...argv: string[]) => expect(() => parseArgv(argv), argv.join(' ')).toThrow(NspawnError);

  it('--private-users: a UID base and range that fit in 32 bits, range at least 1', () => {
    expect(s('--private-users=65536').privateUsers).toEqual({ mode: 'fixed', shift: 65536, range: 65536 });
    expect(s('--private-users=65536:1').privateUsers).toEqual({ mode: 'fixed', shift: 65536, range: 1 });
    expect(s('--private-users=identity').privateUsers.mode).toBe('identity');
    bad('--private-users=65536:0');
    bad('--private-users=4294967295:2');
    bad('--private-users=-1');
    bad('--private-users=maybe');
  });

  it('--uuid: 32 hex digits, dashed or not, never all zeroes', () => {
    expect(s('--uuid=0123456789ABCDEF0123456789abcdef').uuid).toBe('0123456789abcdef0123456789abcdef');
    expect(s('--uuid=01234567-89ab-cdef-0123-456789abcdef').uuid).toBe('0123456789abcdef0123456789abcdef');
    bad('--uuid=00000000-0000-0000-0000-000000000000');
    bad('--uuid=0123-4567-89ab-cdef-0123-4567-89ab-cdef');
  });

  it('--hostname: a valid host name, as hostname_is_valid() judges it', () => {
    expect(s('--hostname=web.example.com').hostname).toBe('web.example.com');
    for (const h of ['with space', 'a/b', '.', 'a..b', 'x'.repeat(65), '-lead', 'trail-', 'ü'])
      bad(`--hostname=${h}`);
    // Empty unsets it (the machine name is used again).
    expect(s('--hostname=web', '--hostname=').hostname).toBeUndefined();
  });

  it('--kill-signal: names with or without SIG, RTMIN+n, numbers 1..64', () => {
    expect(s('--kill-signal=SIGRTMIN+3').killSignal).toBe(37);
    expect(s('--kill-signal=TERM').killSignal).toBe(15);
    expect(s('--kill-signal=9').killSignal).toBe(9);
    for (const v of ['0', '65', 'SIGNOPE', 'RTMIN+31', '']) bad(`--kill-signal=${v}`);
  });

  it('--volatile without a value is yes; the long form takes yes/no/state/overlay', () => {
    expect(s('--volatile').volatile).toBe('yes');
    expect(s('--volatile=state').volatile).toBe('state');
    expect(s('--volatile=no').volatile).toBe('no');
    bad('--volatile=sometimes');
  });

  it('--capability and --drop-capability name real capabilities (or all)', () => {
    expect(s('--capability=CAP_NET_ADMIN,CAP_SYS_TIME').capabilities).toEqual([
      'CAP_NET_ADMIN',
      'CAP_SYS_TIME',
    ]);
    bad('--capability=CAP_BOGUS');
    bad('--drop-capability=CAP_BOGUS');
  });
});

/** Every option of the table, with a value from its domain or noise. */
const optionArb = fc.oneof(
  ...OPTIONS.map((o) => {
    const value = fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.constantFrom('yes', '/x', '/a:/b', 'pick', 'SIGTERM'),
    );
    if (o.arg === 'none') return fc.constant([`--${o.long}`]);
    const forms: fc.Arbitrary<string[]>[] = [value.map((v) => [`--${o.long}=${v}`])];
    if (o.arg === 'required') forms.push(value.map((v) => [`--${o.long}`, v]));
    if (o.short && o.arg === 'required')
      forms.push(value.filter((v) => v !== '').map((v) => [`-${o.short}${v}`]));
    return fc.oneof(...forms);
  }),
);

describe('the argv generator covers every option', () => {
  it('lists every option in --help', () => {
    for (const o of OPTIONS)
      expect(HELP, `--${o.long}`).toMatch(new RegExp(`(--${o.long}\\b|^\\s+-${o.short} )`, 'm'));
  });

  it('any mix of options: settings or one NspawnError; the forms of one option agree', () => {
    fc.assert(
      fc.property(
        fc.array(optionArb, { maxLength: 8 }),
        fc.array(fc.string(), { maxLength: 3 }),
        (opts, rest) => {
          const argv = opts.flat();
          let parsed: ReturnType<typeof parseArgv> | undefined;
          try {
            parsed = parseArgv([...argv, '--', ...rest]);
          } catch (e) {
            expect(e).toBeInstanceOf(NspawnError);
            expect((e as Error).message).not.toMatch(/\n/);
            return;
          }
          // Everything after -- is the command, untouched.
          expect(parsed.settings.parameters).toEqual(rest);
          // --opt v, --opt=v and -Xv are the same thing.
          const canonical = opts.map((o) =>
            o.length === 2
              ? [`${o[0]}=${o[1]}`]
              : o[0]!.startsWith('--')
                ? o
                : [`--${OPTIONS.find((x) => x.short === o[0]![1])!.long}=${o[0]!.slice(2)}`],
          );
          expect(parseArgv([...canonical.flat(), '--', ...rest]).settings).toEqual(parsed.settings);
        },
      ),
      { numRuns: fuzzRuns(1500) },
    );
  });
});

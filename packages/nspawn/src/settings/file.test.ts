import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../../tools/test/fuzz.js';
import { NspawnError } from '../errors.js';
import { parseArgv } from './argv.js';
import { mergeSettingsFile, parseSettingsFile, SettingsFileError, splitWords } from './file.js';
import type { Settings } from './settings.js';

const FILE = `# a comment
[Exec]
Boot=yes
Parameters=--log-level=debug "two words"
Environment=A=1 B="x y"
Capability=CAP_NET_ADMIN

[Files]
ReadOnly=true
Bind=/srv/data:/data:norbind
TemporaryFileSystem=/scratch:mode=0700
Frobnicate=1

[Network]
Private=yes
Port=tcp:80
`;

describe('.nspawn files', () => {
  it('parse into the fields they set', () => {
    const p = parseSettingsFile(FILE, 'web.nspawn');
    expect(p.settings).toMatchObject({
      boot: true,
      parameters: ['--log-level=debug', 'two words'],
      environment: ['A=1', 'B=x y'],
      capabilities: ['CAP_NET_ADMIN'],
      readOnly: true,
      binds: [{ source: '/srv/data', destination: '/data', readOnly: false, recursive: false }],
      tmpfs: [{ destination: '/scratch', options: 'mode=0700' }],
      privateNetwork: true,
      ports: [{ protocol: 'tcp', hostPort: 80, containerPort: 80 }],
    });
    expect(p.warnings).toEqual([
      "web.nspawn:12: Unknown key name 'Frobnicate' in section 'Files', ignoring.",
    ]);
  });

  it('name file, line and key of a bad value', () => {
    expect(() => parseSettingsFile('[Exec]\nBoot=perhaps\n', 'x.nspawn')).toThrow(
      "x.nspawn:2: Boot=: invalid value 'perhaps'",
    );
    expect(() => parseSettingsFile('Boot=yes\n', 'x.nspawn')).toThrow(
      'x.nspawn:1: Boot=: assignment outside of any section',
    );
    expect(() => parseSettingsFile('[Exec\n', 'x.nspawn')).toThrow('x.nspawn:1: invalid section header');
    expect(() => parseSettingsFile('[Files]\nBind=relative\n', 'x.nspawn')).toThrow(
      /x.nspawn:2: Bind=.*not an absolute path/,
    );
    expect(() => parseSettingsFile('[Exec]\nParameters="open\n', 'x.nspawn')).toThrow(/unterminated quote/);
  });

  it('let the command line win and ignore privileged settings of an untrusted file', () => {
    const cli = parseArgv(['-D', '/var/lib/machines/web']);
    const parsed = parseSettingsFile(FILE, '/var/lib/machines/web.nspawn');
    const untrusted = mergeSettingsFile(cli.settings, cli.explicit, parsed, false);
    expect(untrusted.settings.boot).toBe(true);
    expect(untrusted.settings.readOnly).toBe(true);
    // The command line wins over the file (ReadOnly=true there), trusted or not.
    const ro = parseArgv(['-D', '/var/lib/machines/web', '--volatile=no', '--read-only']);
    const withVolatile = parseSettingsFile('[Files]\nVolatile=yes\n', 'v.nspawn');
    expect(mergeSettingsFile(ro.settings, ro.explicit, withVolatile, true).settings.volatile).toBe('no');
    expect(mergeSettingsFile(cli.settings, cli.explicit, withVolatile, false).settings.volatile).toBe('yes');
    expect(untrusted.settings.binds).toEqual([]);
    expect(untrusted.settings.capabilities).toEqual([]);
    expect(untrusted.settings.privateNetwork).toBe(false);
    expect(untrusted.notices).toContain(
      'Ignoring Capability= setting, file /var/lib/machines/web.nspawn is not trusted.',
    );
    expect(untrusted.notices).toContain(
      'Ignoring Bind= setting, file /var/lib/machines/web.nspawn is not trusted.',
    );
    const trusted = mergeSettingsFile(cli.settings, cli.explicit, parsed, true);
    expect(trusted.settings.binds).toHaveLength(1);
    expect(trusted.settings.privateNetwork).toBe(true);
    const withCli = parseArgv(['-D', '/x', '--tmpfs=/other', 'echo', 'hi']);
    const merged = mergeSettingsFile(withCli.settings, withCli.explicit, parsed, true);
    expect(merged.settings.tmpfs).toEqual([{ destination: '/other', options: 'mode=0755' }]);
    expect(merged.settings.parameters).toEqual(['echo', 'hi']);
  });

  // What systemd-nspawn 252 ignores in an untrusted file, and Template= (ours alone).
  const PRIVILEGED: Array<[string, string, keyof Settings]> = [
    ['Exec', 'Capability=CAP_SYS_MODULE', 'capabilities'],
    ['Exec', 'MachineID=0123456789abcdef0123456789abcdef', 'uuid'],
    ['Exec', 'PrivateUsers=no', 'privateUsers'],
    ['Exec', 'SystemCallFilter=open_by_handle_at', 'systemCallFilter'],
    ['Files', 'Bind=/:/host', 'binds'],
    ['Files', 'BindReadOnly=/etc:/host-etc', 'binds'],
    ['Files', 'TemporaryFileSystem=/tmp2', 'tmpfs'],
    ['Files', 'Inaccessible=/etc/hostname', 'inaccessible'],
    ['Files', 'Overlay=/etc:/srv/upper:/overlay', 'overlays'],
    ['Files', 'OverlayReadOnly=/etc:/overlay', 'overlays'],
    ['Files', 'PrivateUsersOwnership=chown', 'privateUsersOwnership'],
    ['Files', 'PrivateUsersChown=yes', 'privateUsersOwnership'],
    ['Files', 'Template=/var/lib/secret-tree', 'template'],
    ['Network', 'Private=yes', 'privateNetwork'],
  ];
  for (const [section, line, field] of PRIVILEGED) {
    it(`ignore ${line} from an untrusted file, apply it from a trusted one`, () => {
      const cli = parseArgv(['-D', '/var/lib/machines/web']);
      const parsed = parseSettingsFile(`[${section}]\n${line}\n`, '/var/lib/machines/web.nspawn');
      const key = line.slice(0, line.indexOf('='));
      const untrusted = mergeSettingsFile(cli.settings, cli.explicit, parsed, false);
      expect(untrusted.settings[field]).toEqual(cli.settings[field]);
      expect(untrusted.notices).toContain(
        `Ignoring ${key}= setting, file /var/lib/machines/web.nspawn is not trusted.`,
      );
      const trusted = mergeSettingsFile(cli.settings, cli.explicit, parsed, true);
      expect(trusted.settings[field]).toEqual(parsed.settings[field]);
      expect(trusted.settings[field]).not.toEqual(cli.settings[field]);
    });
  }

  it('take a deny-only SystemCallFilter= and the unprivileged keys from an untrusted file', () => {
    const cli = parseArgv(['-D', '/x']);
    const parsed = parseSettingsFile(
      '[Exec]\nSystemCallFilter=~open_by_handle_at\nEphemeral=yes\nHostname=h\n[Files]\nVolatile=state\n',
      'x.nspawn',
    );
    const m = mergeSettingsFile(cli.settings, cli.explicit, parsed, false);
    expect(m.settings.systemCallFilter).toEqual(['~open_by_handle_at']);
    // systemd 252 takes Ephemeral=, Volatile= and Hostname= from any file.
    expect(m.settings).toMatchObject({ ephemeral: true, volatile: 'state', hostname: 'h' });
    expect(m.notices).toEqual([]);
  });

  it('only add drops from DropCapability=, also with --settings=override', () => {
    const cli = parseArgv(['-D', '/x', '--drop-capability=CAP_SYS_ADMIN', '--settings=override']);
    const parsed = parseSettingsFile('[Exec]\nDropCapability=CAP_NET_RAW\n', 'x.nspawn');
    for (const trusted of [false, true]) {
      const m = mergeSettingsFile(cli.settings, cli.explicit, parsed, trusted);
      expect(m.settings.dropCapabilities).toEqual(['CAP_SYS_ADMIN', 'CAP_NET_RAW']);
    }
    // An empty assignment in the file clears its own list, not the command line's.
    const empty = parseSettingsFile('[Exec]\nDropCapability=\n', 'x.nspawn');
    expect(mergeSettingsFile(cli.settings, cli.explicit, empty, true).settings.dropCapabilities).toEqual([
      'CAP_SYS_ADMIN',
    ]);
  });

  it('split words like systemd', () => {
    expect(splitWords(`a "b c" 'd e' f\\ g`)).toEqual(['a', 'b c', 'd e', 'f g']);
  });

  it('yield settings or a clear error for any input', () => {
    const line = fc.oneof(
      fc.string(),
      fc.constantFrom('[Exec]', '[Files]', '[Network]', '[Bogus]', ''),
      fc
        .tuple(
          fc.constantFrom(
            'Boot',
            'Parameters',
            'Environment',
            'Bind',
            'Overlay',
            'PrivateUsers',
            'KillSignal',
            'Volatile',
            'X',
          ),
          fc.string(),
        )
        .map(([k, v]) => `${k}=${v}`),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 30 }), (lines) => {
        try {
          parseSettingsFile(lines.join('\n'), 'fuzz.nspawn');
        } catch (e) {
          expect(e).toBeInstanceOf(NspawnError);
          if (e instanceof SettingsFileError) expect(e.message).toMatch(/^fuzz\.nspawn:\d+: /);
        }
      }),
      { numRuns: fuzzRuns(3000) },
    );
  });
});

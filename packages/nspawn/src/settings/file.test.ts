import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NspawnError } from '../errors.js';
import { parseArgv } from './argv.js';
import { mergeSettingsFile, parseSettingsFile, SettingsFileError, splitWords } from './file.js';

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
      binds: [{ source: '/srv/data', destination: '/data', readOnly: false, recursive: false, idmap: false }],
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
    const cli = parseArgv(
      ['-D', '/var/lib/machines/web', '--read-only=no'].filter((a) => a !== '--read-only=no'),
    );
    const parsed = parseSettingsFile(FILE, '/var/lib/machines/web.nspawn');
    const untrusted = mergeSettingsFile(cli.settings, cli.explicit, parsed, false);
    expect(untrusted.settings.boot).toBe(true);
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
      { numRuns: 3000 },
    );
  });
});

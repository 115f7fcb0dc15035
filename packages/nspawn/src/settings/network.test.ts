import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../../tools/test/fuzz.js';
import { capabilityMask } from '../container/security.js';
import { NspawnError } from '../errors.js';
import { parseArgv } from './argv.js';
import { mergeSettingsFile, parseSettingsFile } from './file.js';
import { hasPrivateNetwork, parsePortSpec } from './network.js';
import { defaultSettings } from './settings.js';

const CAP_NET_ADMIN = 1n << 12n;

describe('network options', () => {
  it('parses systemd-nspawn network options', () => {
    const { settings, explicit } = parseArgv([
      '-n',
      '--network-veth-extra=sdx:inner',
      '--network-zone=web',
      '--network-interface=eth1',
      '--network-macvlan=eth2',
      '-p',
      'udp:53',
      '--port=8080:80',
      'true',
    ]);
    expect(settings).toMatchObject({
      networkVeth: true,
      networkVethExtra: ['sdx:inner'],
      networkZone: 'web',
      networkInterfaces: ['eth1'],
      networkMacvlan: ['eth2'],
      ports: [
        { protocol: 'udp', hostPort: 53, containerPort: 53 },
        { protocol: 'tcp', hostPort: 8080, containerPort: 80 },
      ],
    });
    expect(explicit.has('networkVeth')).toBe(true);
    expect(hasPrivateNetwork(settings)).toBe(true);
    expect(parseArgv(['--network-bridge=br0']).settings.networkBridge).toBe('br0');
    expect(parseArgv(['--network-namespace-path=/run/netns/x']).settings.networkNamespacePath).toBe(
      '/run/netns/x',
    );
  });

  it('every option that makes a network namespace keeps CAP_NET_ADMIN; the host network does not', () => {
    expect(capabilityMask(defaultSettings()) & CAP_NET_ADMIN).toBe(0n);
    for (const argv of [
      ['--private-network'],
      ['-n'],
      ['--network-zone=z'],
      ['--network-bridge=br0'],
      ['--network-interface=eth1'],
      ['--network-macvlan=eth1'],
      ['--network-veth-extra=a'],
    ])
      expect(capabilityMask(parseArgv(argv).settings) & CAP_NET_ADMIN).toBe(CAP_NET_ADMIN);
    expect(
      capabilityMask(parseArgv(['-n', '--drop-capability=CAP_NET_ADMIN']).settings) & CAP_NET_ADMIN,
    ).toBe(0n);
    expect(capabilityMask(parseArgv(['--network-namespace-path=/x']).settings) & CAP_NET_ADMIN).toBe(0n);
  });

  it('refuses bad values, naming them', () => {
    expect(() => parseArgv(['--network-bridge=a/b'])).toThrow(/--network-bridge= interface name: "a\/b"/);
    expect(() => parseArgv(['--network-zone=a-zone-name-too-long'])).toThrow(/--network-zone= value/);
    expect(() => parseArgv([`--network-interface=${'x'.repeat(16)}`])).toThrow(NspawnError);
    expect(() => parseArgv(['-p', 'tcp:0'])).toThrow(/Invalid port in --port=tcp:0: "0"/);
    expect(() => parseArgv(['-p', 'tcp:1:2:3'])).toThrow(/Invalid --port= value/);
    expect(() => parseArgv(['--network-veth-extra=a:b:c'])).toThrow(/--network-veth-extra=/);
    expect(() => parseArgv(['--network-namespace-path=relative'])).toThrow(/absolute path/);
  });

  it('parses any --port value into valid ports or refuses it (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 24 }), (v) => {
        try {
          const p = parsePortSpec(v);
          for (const n of [p.hostPort, p.containerPort])
            expect(Number.isInteger(n) && n >= 1 && n <= 65535).toBe(true);
          expect(['tcp', 'udp']).toContain(p.protocol);
        } catch (e) {
          expect(e).toBeInstanceOf(NspawnError);
        }
      }),
      { numRuns: fuzzRuns(3000) },
    );
    fc.assert(
      fc.property(
        fc.constantFrom('tcp', 'udp'),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 1, max: 65535 }),
        (proto, h, c) => {
          expect(parsePortSpec(`${proto}:${h}:${c}`)).toEqual({
            protocol: proto,
            hostPort: h,
            containerPort: c,
          });
        },
      ),
    );
  });
});

describe('[Network] in .nspawn files', () => {
  const FILE = `[Network]
VirtualEthernet=yes
VirtualEthernetExtra=sdx:inner
Bridge=br0
Zone=web
Interface=eth1 eth2
MACVLAN=eth3
Port=udp:53
Port=8080:80
`;
  it('parses every key (and IPVLAN, which is refused at start)', () => {
    const p = parseSettingsFile(`${FILE}IPVLAN=eth4\n`, 'web.nspawn');
    expect(p.warnings).toEqual([]);
    expect(p.settings).toMatchObject({
      networkVeth: true,
      networkVethExtra: ['sdx:inner'],
      networkBridge: 'br0',
      networkZone: 'web',
      networkInterfaces: ['eth1', 'eth2'],
      networkMacvlan: ['eth3'],
      networkIpvlan: ['eth4'],
      ports: [
        { protocol: 'udp', hostPort: 53, containerPort: 53 },
        { protocol: 'tcp', hostPort: 8080, containerPort: 80 },
      ],
    });
    expect(() => parseSettingsFile('[Network]\nPort=tcp:99999\n', 'x.nspawn')).toThrow(/x.nspawn:2: Port=/);
  });

  it('a trusted file gives the container its own network: never the host one', () => {
    const p = parseSettingsFile('[Network]\nVirtualEthernet=yes\n', 'web.nspawn');
    const { settings } = mergeSettingsFile(defaultSettings(), new Set(), p, true);
    expect(settings.networkVeth).toBe(true);
    expect(hasPrivateNetwork(settings)).toBe(true);
  });

  it('an untrusted file (next to the image) changes no network setting', () => {
    const p = parseSettingsFile(FILE, '/var/lib/machines/web.nspawn');
    const { settings, notices } = mergeSettingsFile(defaultSettings(), new Set(), p, false);
    expect(settings.networkVeth).toBe(false);
    expect(settings.ports).toEqual([]);
    expect(settings.networkInterfaces).toEqual([]);
    expect(settings.networkBridge).toBeUndefined();
    expect(settings.networkZone).toBeUndefined();
    expect(hasPrivateNetwork(settings)).toBe(false);
    expect(notices).toContain(
      'Ignoring Interface= setting, file /var/lib/machines/web.nspawn is not trusted.',
    );
    expect(notices).toContain('Ignoring Port= setting, file /var/lib/machines/web.nspawn is not trusted.');
  });

  it('the command line wins over the file', () => {
    const a = parseArgv(['--network-zone=cli']);
    const p = parseSettingsFile('[Network]\nZone=file\n', 'web.nspawn');
    expect(mergeSettingsFile(a.settings, a.explicit, p, true).settings.networkZone).toBe('cli');
  });
});

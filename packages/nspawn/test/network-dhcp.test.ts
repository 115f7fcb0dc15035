import type { ChildProcess } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DAEMON_CLAIM,
  formatSubnet,
  heldClaims,
  networkdVethRunning,
  nthAddress,
  pickSubnet,
  subnetOf,
  tryClaim,
} from '@sd/networkd-veth';
import { AF, getLink, listAddresses, listLinks } from '@sd/sys';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../../../tools/test/busybox-tree.js';
import { HOST_UPLINK, INTERNET, NETWORKD_CLI, Topology } from './net-topology.js';

// host0 addressed by DHCP end to end: our server (in sd-nspawn, or in
// sd-networkd-veth) and our client, busybox udhcpc, or systemd-networkd in a
// booted Debian guest; link-local on both ends when no server answers.
// Everything runs in the test's own "host" and "internet" namespaces.

const DEBIAN = '/var/cache/sd-test/debian-bookworm';
const base = ['-q', '--register=no', '--console=pipe', '--kill-signal=SIGKILL'];

// udhcpc's hook: configure what it was given, say so.
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew)
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "\${router%% *}" dev "$interface"
    echo "udhcpc-bound $ip/$mask router $router" ;;
esac
`;

let t: Topology;
let tree: ReturnType<typeof makeBusyboxTree>;
beforeAll(async () => {
  t = await Topology.create();
  tree = makeBusyboxTree('sdnetd-busybox-');
  writeFileSync(join(tree.dir, 'udhcpc.sh'), UDHCPC_SCRIPT, { flag: 'wx' });
  chmodSync(join(tree.dir, 'udhcpc.sh'), 0o755);
});
afterAll(async () => {
  await t?.close();
  tree?.remove();
});

/** Nothing of ours is left in the host namespace: links, addresses, routes, nft tables, DHCP servers. */
async function expectClean() {
  expect((await listLinks(t.host)).map((l) => l.name).sort()).toEqual(['lo', 'sdnet-up']);
  const addrs = (await listAddresses(t.host, { family: AF.INET })).map((a) => a.address);
  expect(addrs.sort()).toEqual(['127.0.0.1', HOST_UPLINK]);
  const routes = t.run('host', 'ip', ['-4', 'route', 'show', 'table', 'all']).stdout;
  expect(routes).not.toMatch(/ve-|vz-|vb-|169\.254|192\.168\.|10\.|172\./);
  expect(t.nftTables()).toBe('');
  // A server (and its leases) lives only as long as its claim on a link: none is left.
  expect(heldClaims(t.hostNs)).toEqual([]);
}

afterEach(async () => {
  await t.waitFor(
    'the host namespace to be clean',
    async () => {
      try {
        await expectClean();
        return true;
      } catch {
        return false;
      }
    },
    15_000,
  );
});

function collect(child: ChildProcess) {
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d) => (out.stdout += d));
  child.stderr!.on('data', (d) => (out.stderr += d));
  return out;
}

const exited = (c: ChildProcess) =>
  new Promise((r) => (c.exitCode !== null || c.signalCode ? r(null) : c.once('exit', r)));

describe('host0 by DHCP (in test namespaces)', () => {
  it('(a) our client in a busybox guest: a lease from our server, the internet sees the uplink', async () => {
    const r = await t.nspawn([
      ...base,
      '-D',
      tree.dir,
      '-M',
      'sdnetd-a',
      '-n',
      '/bin/sh',
      '-c',
      `ip -4 -o addr show host0; wget -q -O - http://${INTERNET}:8000/`,
    ]);
    expect(r.stderr).toBe('');
    const subnet = pickSubnet('sdnetd-a', 28, []);
    const m = /inet (\S+)\/28 .*dynamic/.exec(r.stdout);
    expect(m, r.stdout).toBeTruthy();
    expect(formatSubnet(subnetOf(m![1]!, 28))).toBe(formatSubnet(subnet));
    expect(r.stdout.trim().endsWith(HOST_UPLINK)).toBe(true);
    expect(r.code).toBe(0);
  });

  it('(b) busybox udhcpc inside gets the same lease from our server and our client stays out of its way', async () => {
    const r = await t.nspawn([
      ...base,
      '-D',
      tree.dir,
      '-M',
      'sdnetd-b',
      '-n',
      '/bin/sh',
      '-c',
      // udhcpc's deconfig flushes what ours set; it then configures its own lease.
      `ip -4 -o addr show host0; udhcpc -i host0 -f -q -n -t 5 -T 1 -s /udhcpc.sh 2>&1; ip -4 -o addr show host0; wget -q -O - http://${INTERNET}:8000/`,
    ]);
    const ours = /inet (\S+)\/28/.exec(r.stdout)?.[1];
    const bound = /udhcpc-bound (\S+)\/28 router (\S+)/.exec(r.stdout);
    expect(bound, r.stdout + r.stderr).toBeTruthy();
    // One client identifier (01 + MAC), one lease: the same address.
    expect(bound![1]).toBe(ours);
    expect(bound![2]).toBe(nthAddress(pickSubnet('sdnetd-b', 28, []), 1));
    expect(r.stdout.trim().endsWith(HOST_UPLINK)).toBe(true);
    expect(r.stderr).not.toMatch(/stands down|DHCP client/);
    expect(r.code).toBe(0);
  });

  it('(c) systemd-networkd in a booted Debian guest gets a lease from our server', async () => {
    // The shared tree is used read-only (--volatile=state); networkd is pulled in by init's command line.
    const child = t.nspawnChild([
      ...base,
      '-b',
      '-D',
      DEBIAN,
      '--volatile=state',
      '-M',
      'sdnetd-deb',
      '-n',
      'systemd.wants=systemd-networkd.service',
    ]);
    const out = collect(child);
    try {
      const addr = await t.waitFor(`host0 in the guest (${out.stderr})`, () => t.host0Address(child), 90_000);
      expect(formatSubnet(subnetOf(addr.split('/')[0]!, 28))).toBe(
        formatSubnet(pickSubnet('sdnetd-deb', 28, [])),
      );
      const pid = t.containerPid(child)!;
      // The guest's networkd owns host0 (with -b ours never touches it).
      // networkctl asks networkd over the guest's system bus, which may come up after the lease.
      // routable: networkd holds a global address on host0 (its IPv6 parts may still be "configuring").
      await t.waitFor(
        "networkd's view of host0",
        () =>
          /host0\s+ether\s+routable\s+configur/.test(
            t.run('host', 'nsenter', ['-t', String(pid), '-a', 'networkctl', '--no-pager', 'list', 'host0'])
              .stdout,
          ),
        60_000,
      );
      const curl = await t.waitFor('the internet from the guest', () => {
        const c = t.inContainerNet(pid, 'curl', ['-sS', '--max-time', '3', `http://${INTERNET}:8000/`]);
        return c.stdout.trim() === HOST_UPLINK ? c.stdout : undefined;
      });
      expect(curl.trim()).toBe(HOST_UPLINK);
      expect(out.stderr).toBe('');
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  }, 150_000);

  it('with no DHCP server answering, both ends fall back to 169.254.x.y and reach each other', async () => {
    // A claimed daemon name: sd-nspawn believes sd-networkd-veth serves the link, and nobody does.
    const fake = tryClaim(DAEMON_CLAIM, t.hostNs);
    expect(fake).toBeDefined();
    const child = t.nspawnChild([...base, '-D', tree.dir, '-M', 'sdnetd-ll', '-n', 'sleep', '120']);
    const out = collect(child);
    try {
      const inside = await t.waitFor(
        `host0's link-local address (${out.stderr})`,
        () => t.host0Address(child, 'link'),
        30_000,
      );
      expect(inside).toMatch(/^169\.254\.\d+\.\d+\/16$/);
      const ve = await t.waitFor(
        'the host end',
        async () => {
          const l = await getLink(t.host, 've-sdnetd-ll');
          const a = l && (await listAddresses(t.host, { family: AF.INET, index: l.index }));
          return a?.find((x) => x.address.startsWith('169.254.'))?.address;
        },
        30_000,
      );
      expect(t.host0Address(child)).toBeUndefined();
      const pid = t.containerPid(child)!;
      expect(t.inContainerNet(pid, 'busybox', ['ping', '-c', '1', '-W', '3', ve]).code).toBe(0);
      expect(t.run('host', 'busybox', ['ping', '-c', '1', '-W', '3', inside.split('/')[0]!]).code).toBe(0);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
      fake?.release();
    }
  }, 90_000);

  it('sd-networkd-veth serves the link when it runs; sd-nspawn then serves none of its own', async () => {
    const d = t.spawnIn('host', process.execPath, [NETWORKD_CLI, `--lock=/run/sd-networkd-veth/nat.lock`]);
    const dout = collect(d);
    try {
      await t.waitFor('the daemon', () => networkdVethRunning(t.hostNs));
      const r = await t.nspawn([
        ...base,
        '-D',
        tree.dir,
        '-M',
        'sdnetd-dm',
        '-n',
        '/bin/sh',
        '-c',
        `wget -q -O - http://${INTERNET}:8000/`,
      ]);
      expect(r.stdout.trim()).toBe(HOST_UPLINK);
      // The lease came from the daemon's server.
      expect(dout.stdout).toMatch(/ve-sdnetd-dm: lease \S+ to /);
    } finally {
      d.kill('SIGTERM');
      await exited(d);
    }
  }, 60_000);

  it('IPv6 link-local: host0 and ve- have fe80:: addresses and reach each other', async () => {
    const child = t.nspawnChild([...base, '-D', tree.dir, '-M', 'sdnetd-v6', '-n', 'sleep', '120']);
    try {
      await t.waitFor('a lease', () => t.host0Address(child));
      const pid = t.containerPid(child)!;
      // Usable once duplicate address detection is over (no "tentative" flag).
      const ll = (out: string) => (/inet6 (fe80::\S+)\/64 scope link\s*$/m.exec(out) ?? [])[1];
      const inside = await t.waitFor('host0 fe80::', () =>
        ll(t.inContainerNet(pid, 'ip', ['-6', 'addr', 'show', 'dev', 'host0']).stdout),
      );
      const host = await t.waitFor('ve- fe80::', () =>
        ll(t.run('host', 'ip', ['-6', 'addr', 'show', 'dev', 've-sdnetd-v6']).stdout),
      );
      expect(
        t.inContainerNet(pid, 'busybox', ['ping', '-6', '-c', '1', '-W', '3', `${host}%host0`]).code,
      ).toBe(0);
      expect(
        t.run('host', 'busybox', ['ping', '-6', '-c', '1', '-W', '3', `${inside}%ve-sdnetd-v6`]).code,
      ).toBe(0);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  }, 60_000);

  it('after kill -9 of sd-nspawn, one more start serves again and leaves nothing', async () => {
    const child = t.nspawnChild([...base, '-D', tree.dir, '-M', 'sdnetd-k', '-n', 'sleep', '120']);
    await t.waitFor('a lease', () => t.host0Address(child));
    child.kill('SIGKILL');
    await exited(child);
    await t.waitFor('the veth to go', async () => !(await getLink(t.host, 've-sdnetd-k')));
    const r = await t.nspawn([
      ...base,
      '-D',
      tree.dir,
      '-M',
      'sdnetd-k',
      '-n',
      '/bin/sh',
      '-c',
      `wget -q -O - http://${INTERNET}:8000/`,
    ]);
    expect(r.stdout.trim()).toBe(HOST_UPLINK);
    await expectClean();
  }, 60_000);
});

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { CLAIM_DIR, formatSubnet, nthAddress, pickSubnet, shortenIfname, subnetOf } from '@sd/networkd-veth';
import {
  AF,
  addAddress,
  closeQuietly,
  createLink,
  createNetworkNamespace,
  deleteAddress,
  deleteLink,
  getLink,
  listAddresses,
  listLinks,
  openRouteSocket,
} from '@sd/sys';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../../../tools/test/busybox-tree.js';
import { HOST_UPLINK, INTERNET, Topology } from './net-topology.js';

// Containers run from the host's own / in volatile mode (curl, python3 and ip inside),
// with sd-nspawn itself in the test's "host" namespace: nothing here touches the real host's network.
const base = ['-q', '-D', '/', '--volatile=yes', '--register=no', '--console=pipe', '--kill-signal=SIGKILL'];

// socketserver.TCPServer, not http.server.HTTPServer: the latter's bind looks its own name up
// (socket.getfqdn), a DNS query to the host's resolv.conf servers that the test namespaces cannot
// reach, and answered nothing for ~10 s.
const SERVERS = `
import socket, socketserver, threading, http.server
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', 53))
def udp():
    while True:
        m, a = u.recvfrom(100); u.sendto(b'udp-from-container', a)
threading.Thread(target=udp, daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(s):
        s.send_response(200); s.end_headers(); s.wfile.write(b'tcp-from-container')
    def log_message(s, *a): pass
socketserver.TCPServer(('0.0.0.0', 80), H).serve_forever()
`;
const UDP_CLIENT = (host: string, port: number) => `
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b'hi', ('${host}', ${port})); print(s.recvfrom(100)[0].decode())`;

let t: Topology;
beforeAll(async () => {
  t = await Topology.create();
});
afterAll(async () => {
  await t?.close();
});

/** Nothing of ours is left in the host namespace: links, pool addresses, nft tables. */
async function expectClean() {
  const names = (await listLinks(t.host)).map((l) => l.name).sort();
  expect(names).toEqual(['lo', 'sdnet-up']);
  const addrs = (await listAddresses(t.host, { family: AF.INET })).map((a) => a.address);
  expect(addrs.sort()).toEqual(['127.0.0.1', HOST_UPLINK]);
  expect(t.nftTables()).toBe('');
}

async function vethSubnet(name: string): Promise<string | undefined> {
  const l = await getLink(t.host, name);
  if (!l) return undefined;
  const a = (await listAddresses(t.host, { family: AF.INET, index: l.index }))[0];
  return a ? formatSubnet(subnetOf(a.address, a.prefixLength)) : undefined;
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
    10_000,
  );
});

describe('sd-nspawn networking (in test namespaces)', () => {
  it('-n: the container reaches the internet server, which sees the host uplink address', async () => {
    const r = await t.nspawn([
      ...base,
      '-M',
      'sdnet-a',
      '-n',
      '/usr/bin/curl',
      '-sS',
      '--max-time',
      '5',
      `http://${INTERNET}:8000/`,
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(HOST_UPLINK);
    expect(r.code).toBe(0);
    await expectClean();
  });

  it('host0 has a lease from our server on the ve- subnet, a default route via the host, and CAP_NET_ADMIN', async () => {
    const r = await t.nspawn([
      ...base,
      '-M',
      'sdnet-a',
      '-n',
      '/bin/sh',
      '-c',
      'ip -4 -o addr show host0; ip route show default; ip link set lo mtu 1500 && echo net-admin-ok',
    ]);
    const subnet = pickSubnet('sdnet-a', 28, []);
    // Leased by our DHCP server (in sd-nspawn): a dynamic address with the lease as its lifetime.
    const m = /inet (\S+)\/28 .*dynamic.*valid_lft (\d+)sec/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).toBeTruthy();
    expect(formatSubnet(subnetOf(m![1]!, 28))).toBe(formatSubnet(subnet));
    expect(m![1]).not.toBe(nthAddress(subnet, 1));
    expect(Number(m![2])).toBeGreaterThan(3500);
    expect(r.stdout).toContain(`default via ${nthAddress(subnet, 1)} dev host0 proto dhcp`);
    expect(r.stdout).toContain('net-admin-ok');
  });

  it('--port tcp and udp reach a server inside, from the internet and from the host itself', async () => {
    const child = t.nspawnChild([
      ...base,
      '-M',
      'sdnet-p',
      '-n',
      '-p',
      'tcp:8080:80',
      '-p',
      'udp:5353:53',
      '/usr/bin/python3',
      '-c',
      SERVERS,
    ]);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const url = `http://${HOST_UPLINK}:8080/`;
    const curl = (where: 'host' | 'inet') => t.run(where, 'curl', ['-sS', '--max-time', '2', url]);
    // Up to 60 s under heavy load: python3 starts slowly.
    await t.waitFor(
      `the server behind --port (${stderr})`,
      () => curl('inet').stdout === 'tcp-from-container',
      60_000,
    );
    expect(curl('host').stdout).toBe('tcp-from-container');
    for (const where of ['inet', 'host'] as const)
      expect(t.run(where, 'python3', ['-c', UDP_CLIENT(HOST_UPLINK, 5353)]).stdout.trim()).toBe(
        'udp-from-container',
      );
    expect(t.nftTables()).toBe('table ip io.sd.nat');
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await expectClean();
  }, 120_000);

  it('two containers get different subnets; a machine gets its subnet back; a subnet in use is skipped', async () => {
    const a = t.nspawnChild([...base, '-M', 'sdnet-c1', '-n', 'sleep', '30']);
    const b = t.nspawnChild([...base, '-M', 'sdnet-c2', '-n', 'sleep', '30']);
    const s1 = await t.waitFor('ve-sdnet-c1', () => vethSubnet('ve-sdnet-c1'));
    const s2 = await t.waitFor('ve-sdnet-c2', () => vethSubnet('ve-sdnet-c2'));
    expect(s1).not.toBe(s2);
    expect(s1).toMatch(/\/28$/);
    a.kill('SIGTERM');
    b.kill('SIGTERM');
    await Promise.all([a, b].map((c) => new Promise((r) => c.once('exit', r))));
    await t.waitFor('the links to go', async () => !(await getLink(t.host, 've-sdnet-c1')));

    // Stable across restarts.
    const again = t.nspawnChild([...base, '-M', 'sdnet-c1', '-n', 'sleep', '30']);
    expect(await t.waitFor('ve-sdnet-c1 again', () => vethSubnet('ve-sdnet-c1'))).toBe(s1);
    again.kill('SIGTERM');
    await new Promise((r) => again.once('exit', r));
    await t.waitFor('the link to go', async () => !(await getLink(t.host, 've-sdnet-c1')));

    // The subnet it would take is on the host already: it takes another.
    const up = (await getLink(t.host, 'sdnet-up'))!.index;
    const taken = pickSubnet('sdnet-c1', 28, []);
    const busy = { index: up, address: nthAddress(taken, 9), prefixLength: 28 };
    await addAddress(t.host, busy);
    try {
      const c = t.nspawnChild([...base, '-M', 'sdnet-c1', '-n', 'sleep', '30']);
      const s = await t.waitFor('ve-sdnet-c1 on another subnet', () => vethSubnet('ve-sdnet-c1'));
      expect(s).not.toBe(formatSubnet(taken));
      c.kill('SIGTERM');
      await new Promise((r) => c.once('exit', r));
    } finally {
      await deleteAddress(t.host, busy);
    }
  });

  it('two containers in one --network-zone reach each other; the zone bridge goes with the last', async () => {
    const server = t.nspawnChild([
      ...base,
      '-M',
      'sdnet-z1',
      '--network-zone=sdnetz',
      '/usr/bin/python3',
      '-c',
      SERVERS,
    ]);
    const subnet = await t.waitFor('vz-sdnetz', () => vethSubnet('vz-sdnetz'));
    expect(subnet).toMatch(/\/24$/);
    // z1's address comes from the zone's DHCP server (served by z1's own sd-nspawn).
    const z1 = (await t.waitFor('z1 to have an address', () => t.host0Address(server)))!.split('/')[0]!;
    expect(subnetOf(z1, 24)).toEqual(subnetOf(subnet.split('/')[0]!, 24));
    const bridge = (await getLink(t.host, 'vz-sdnetz'))?.index;
    await t.waitFor(
      'vb-sdnet-z1 in the zone',
      async () => (await getLink(t.host, 'vb-sdnet-z1'))?.master === bridge,
    );
    await t.waitFor(
      'the zone server from the host',
      () =>
        t.run('host', 'curl', ['-sS', '--max-time', '2', `http://${z1}/`]).stdout === 'tcp-from-container',
      60_000,
    );
    const r = await t.nspawn([
      ...base,
      '-M',
      'sdnet-z2',
      '--network-zone=sdnetz',
      '/usr/bin/curl',
      '-sS',
      '--max-time',
      '5',
      `http://${z1}/`,
    ]);
    expect(r.stdout).toBe('tcp-from-container');
    // Still there while z1 runs.
    expect(await getLink(t.host, 'vz-sdnetz')).toBeDefined();
    server.kill('SIGTERM');
    await new Promise((r2) => server.once('exit', r2));
    await t.waitFor('the zone bridge to go', async () => !(await getLink(t.host, 'vz-sdnetz')));
  }, 120_000);

  it('--network-bridge attaches vb-NAME to a bridge the test made', async () => {
    const br = await createLink(t.host, { name: 'sdnet-br0', kind: 'bridge', up: true });
    try {
      await addAddress(t.host, { index: br, address: '10.213.0.1', prefixLength: 24 });
      const r = await t.nspawn([
        ...base,
        '-M',
        'sdnet-b',
        '--network-bridge=sdnet-br0',
        '/bin/sh',
        '-c',
        'ip addr add 10.213.0.2/24 dev host0 && ip link set host0 up && busybox ping -c1 -W3 10.213.0.1 >/dev/null && echo reached',
      ]);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('reached');
      expect(await getLink(t.host, 'vb-sdnet-b')).toBeUndefined();
      expect(await getLink(t.host, 'sdnet-br0')).toBeDefined();
    } finally {
      await deleteLink(t.host, br);
    }
  });

  it('after kill -9 of sd-nspawn, the next start removes what it left', async () => {
    const child = t
      .nspawnChild([
        ...base,
        '-M',
        'sdnet-k',
        '-n',
        '-p',
        'tcp:8081:80',
        '--network-zone=sdnetk',
        'sleep',
        '60',
      ])
      .on('error', () => {});
    void child;
    await t.waitFor('the forward', () =>
      t.run('host', 'nft', ['list', 'map', 'ip', 'io.sd.nat', 'map_port_ipport']).stdout.includes('8081'),
    );
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // The container died with its supervisor; its nft elements and zone bridge are left behind.
    await t.waitFor('the veth to go', async () => !(await getLink(t.host, 'vb-sdnet-k')));
    expect(t.nftTables()).toBe('table ip io.sd.nat');
    expect(await getLink(t.host, 'vz-sdnetk')).toBeDefined();
    // The same machine again: it also takes over the scope the killed one left.
    const r = await t.nspawn([...base, '-M', 'sdnet-k', '-n', 'true']);
    expect(r.code).toBe(0);
    await expectClean();
    // The killed one's DHCP claim on the zone bridge went too (nobody held it).
    expect(readdirSync(CLAIM_DIR).filter((f) => f.endsWith('-dhcp-vz-sdnetk.lock'))).toEqual([]);
  });

  it('--network-interface is moved in and given back; --network-macvlan and --network-veth-extra appear inside', async () => {
    await createLink(t.host, { name: 'sdnet-if0', kind: 'veth', peer: { name: 'sdnet-if1' } });
    try {
      const r = await t.nspawn([
        ...base,
        '-M',
        'sdnet-m',
        '--network-interface=sdnet-if0',
        '--network-macvlan=sdnet-if1',
        '--network-veth-extra=sdnet-x0:inner0',
        '/usr/sbin/ip',
        '-o',
        'link',
      ]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/ sdnet-if0[@:]/);
      expect(r.stdout).toMatch(/ mv-sdnet-if1[@:]/);
      expect(r.stdout).toMatch(/ inner0[@:]/);
      expect(r.stdout).not.toMatch(/sdnet-up/);
      expect(await getLink(t.host, 'sdnet-if0')).toBeDefined();
      expect(await getLink(t.host, 'sdnet-x0')).toBeUndefined();
    } finally {
      await deleteLink(t.host, 'sdnet-if0', { missingOk: true });
    }
  });

  it('--network-namespace-path runs the container in that namespace', async () => {
    const ns = createNetworkNamespace();
    const s = openRouteSocket(ns);
    try {
      await createLink(s, { name: 'sdnet-nsp', kind: 'bridge' });
      const r = await t.nspawn([
        ...base,
        '-M',
        'sdnet-n',
        `--network-namespace-path=/proc/${process.pid}/fd/${ns}`,
        '/usr/sbin/ip',
        '-o',
        'link',
      ]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/ sdnet-nsp:/);
      const bad = await t.nspawn([
        ...base,
        '-M',
        'sdnet-n',
        '--network-namespace-path=/etc/hostname',
        'true',
      ]);
      expect(bad.stderr).toMatch(/--network-namespace-path=\/etc\/hostname is not a network namespace/);
    } finally {
      s.close();
      closeQuietly(ns);
    }
  });

  it('a trusted .nspawn file with VirtualEthernet=yes gives the container a veth, not the host network', async () => {
    mkdirSync('/run/systemd/nspawn', { recursive: true });
    const file = '/run/systemd/nspawn/sdnet-f.nspawn';
    writeFileSync(file, '[Network]\nVirtualEthernet=yes\nPort=tcp:8082:80\n');
    try {
      const r = await t.nspawn([...base, '-M', 'sdnet-f', '/usr/sbin/ip', '-o', 'link']);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/ host0@/);
      expect(r.stdout).not.toMatch(/sdnet-up/);
    } finally {
      rmSync(file);
    }
  });

  it('a long machine name gets a shortened link with its full name as altname; -U works with -n', async () => {
    const tree = makeBusyboxTree('sdnet-bb-');
    try {
      const child = t.nspawnChild([
        '-q',
        '--register=no',
        '-D',
        tree.dir,
        '-M',
        'sdnet-a-rather-long-name',
        '--kill-signal=SIGKILL',
        '-U',
        '-n',
        'sleep',
        '30',
      ]);
      const link = await t.waitFor('the shortened link', async () =>
        (await listLinks(t.host)).find((l) => l.name.startsWith('ve-sdnet-a-')),
      );
      expect(Buffer.byteLength(link.name)).toBe(15);
      expect(link.name).toBe(shortenIfname('ve-sdnet-a-rather-long-name').name);
      // The alternative name follows the link's making in a second request (as systemd-nspawn's does).
      expect(
        await t.waitFor('the altname', async () =>
          (await getLink(t.host, link.index))?.altNames?.includes('ve-sdnet-a-rather-long-name'),
        ),
      ).toBe(true);
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      const r = await t.nspawn([
        '-q',
        '--register=no',
        '-D',
        tree.dir,
        '-M',
        'sdnet-u',
        '-U',
        '-n',
        '/bin/sh',
        '-c',
        'ip -4 addr show host0',
      ]);
      const leased = /inet (\S+)\/28/.exec(r.stdout)?.[1];
      expect(leased && formatSubnet(subnetOf(leased, 28))).toBe(formatSubnet(pickSubnet('sdnet-u', 28, [])));
    } finally {
      tree.remove();
    }
  });

  it('refuses what it cannot honour before starting anything', async () => {
    const ipvlan = await t.nspawn([...base, '-M', 'sdnet-i', '--network-ipvlan=sdnet-up', 'true']);
    expect(ipvlan.code).not.toBe(0);
    expect(ipvlan.stderr, ipvlan.stderr).toMatch(
      /--network-ipvlan=sdnet-up: this kernel has no IPVLAN support/,
    );
    const port = await t.nspawn([...base, '-M', 'sdnet-i', '-p', '80', 'true']);
    expect(port.stderr).toMatch(/--port= needs a virtual Ethernet link/);
    const bridge = await t.nspawn([...base, '-M', 'sdnet-i', '--network-bridge=sdnet-nobr', 'true']);
    expect(bridge.stderr).toMatch(/--network-bridge=sdnet-nobr: no such bridge/);
    const bad = await t.nspawn([...base, '-M', 'sdnet-i', '-p', 'sctp:1:2', 'true']);
    expect(bad.stderr).toMatch(/Invalid --port= value: "sctp:1:2"/);
    const badPort = await t.nspawn([...base, '-M', 'sdnet-i', '-n', '-p', 'tcp:70000', 'true']);
    expect(badPort.stderr).toMatch(/Invalid port in --port=tcp:70000: "70000"/);
  });
});

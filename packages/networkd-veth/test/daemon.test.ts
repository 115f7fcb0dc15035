import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AF,
  closeQuietly,
  createLink,
  createNetworkNamespace,
  deleteLink,
  getLink,
  IFF,
  listAddresses,
  type NetlinkSocket,
  openRouteSocket,
  setLink,
} from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDhcpClient } from '../src/dhcp/client.js';
import { configureContainerLink } from '../src/link/configure.js';
import { formatSubnet, subnetOf } from '../src/pool/ipv4.js';
import { networkdVethRunning } from '../src/serve/claim.js';

// sd-networkd-veth runs in a network namespace of the test's own; the links it
// configures are made by the test ("whoever made it"), named sdnet*.
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

let ns = -1;
let sock: NetlinkSocket;
let tmp: string;
const inNs = (cmd: string, args: string[]) =>
  spawnSync('nsenter', [`--net=/proc/${process.pid}/fd/${ns}`, cmd, ...args], { encoding: 'utf8' });

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  ns = createNetworkNamespace();
  sock = openRouteSocket(ns);
  tmp = mkdtempSync(join(tmpdir(), 'sdnet-networkd-'));
});
afterAll(() => {
  sock?.close();
  closeQuietly(ns);
  rmSync(tmp, { recursive: true, force: true });
});

async function pool(name: string) {
  const l = await getLink(sock, name);
  const a = l && (await listAddresses(sock, { index: l.index, family: AF.INET }));
  return { link: l, address: a?.[0] };
}

describe('sd-networkd-veth', () => {
  it('configures a ve- veth made by someone else as 80-container-ve.network does', async () => {
    await createLink(sock, { name: 've-sdnettest', kind: 'veth', peer: { name: 'sdnet-peer' } });
    // Not a container link: left alone.
    await createLink(sock, { name: 'sdnet-other', kind: 'veth', peer: { name: 'sdnet-other2' } });
    const r = inNs(process.execPath, [CLI, '--once', `--lock=${tmp}/nat.lock`]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const { link, address } = await pool('ve-sdnettest');
    expect(address?.prefixLength).toBe(28);
    // The subnet's first address (a /28 starts at a multiple of 16).
    expect(Number(address?.address.split('.')[3]) % 16).toBe(1);
    expect((link?.flags ?? 0) & IFF.UP).toBeTruthy();
    expect(r.stdout).toContain(`ve-sdnettest: ${address?.address}/28`);
    expect(inNs('cat', ['/proc/sys/net/ipv4/ip_forward']).stdout.trim()).toBe('1');
    const nft = inNs('nft', ['list', 'set', 'ip', 'io.sd.nat', 'masq_saddr']).stdout;
    expect(nft).toContain('comment "sd link=ve-sdnettest"');
    expect((await pool('sdnet-other')).address).toBeUndefined();
    // Idempotent: a second pass changes nothing.
    expect(inNs(process.execPath, [CLI, '--once', `--lock=${tmp}/nat.lock`]).status).toBe(0);
    expect((await listAddresses(sock, { index: link!.index, family: AF.INET })).length).toBe(1);
    await deleteLink(sock, 'sdnet-other');
  });

  it('as a daemon, configures new vz- bridges and drops the masquerade of links that go', async () => {
    const d: ChildProcess = spawn(
      'nsenter',
      [`--net=/proc/${process.pid}/fd/${ns}`, process.execPath, CLI, `--lock=${tmp}/nat.lock`],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      await new Promise((r) => d.stdout!.once('data', r)); // ve-sdnettest, configured at start
      await createLink(sock, { name: 'vz-sdnetzone', kind: 'bridge' });
      const deadline = Date.now() + 10_000;
      while (!(await pool('vz-sdnetzone')).address && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect((await pool('vz-sdnetzone')).address?.prefixLength).toBe(24);
      await deleteLink(sock, 've-sdnettest');
      await deleteLink(sock, 'vz-sdnetzone');
      while (inNs('nft', ['list', 'tables']).stdout.trim() !== '' && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      // The last element went, and the table with it.
      expect(inNs('nft', ['list', 'tables']).stdout.trim()).toBe('');
    } finally {
      d.kill('SIGTERM');
      await new Promise((r) => d.once('exit', r));
    }
  });

  it('as a daemon, answers DHCP on a ve- link made by someone else, from the moment it appears', async () => {
    const peerNs = createNetworkNamespace();
    const d: ChildProcess = spawn(
      'nsenter',
      [`--net=/proc/${process.pid}/fd/${ns}`, process.execPath, CLI, `--lock=${tmp}/nat.lock`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    d.stdout!.on('data', (b) => (out += b));
    const peer = openRouteSocket(peerNs);
    try {
      const deadline = Date.now() + 10_000;
      while (!networkdVethRunning(ns) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await createLink(sock, {
        name: 've-sdnetdh',
        kind: 'veth',
        peer: { name: 'sdnet-dhpeer', netns: { fd: peerNs } },
      });
      await setLink(peer, (await getLink(peer, 'sdnet-dhpeer'))!.index, { up: true });
      const client = await startDhcpClient({ netnsFd: peerNs, ifname: 'sdnet-dhpeer', configure: false });
      try {
        const lease = await new Promise<{ address: string; router?: string; prefixLength: number }>(
          (resolve, reject) => {
            client.once('bound', resolve);
            setTimeout(() => reject(new Error(`no lease: ${out}`)), 10_000);
          },
        );
        const { address } = await pool('ve-sdnetdh');
        expect(lease.prefixLength).toBe(28);
        expect(lease.router).toBe(address?.address);
        expect(formatSubnet(subnetOf(lease.address, 28))).toBe(formatSubnet(subnetOf(address!.address, 28)));
        expect(out).toMatch(new RegExp(`ve-sdnetdh: lease ${lease.address.replace(/\./g, '\\.')} to `));
      } finally {
        await client.stop();
      }
    } finally {
      // The link goes while the daemon runs: it drops the link's masquerade and server.
      await deleteLink(sock, 've-sdnetdh').catch(() => {});
      d.kill('SIGTERM');
      await new Promise((r) => d.once('exit', r));
      peer.close();
      closeQuietly(peerNs);
    }
  });

  it('two links configured at once with the same seed get different subnets (the pool lock)', async () => {
    await createLink(sock, { name: 've-sdnetp1', kind: 'veth', peer: { name: 'sdnet-pp1' } });
    await createLink(sock, { name: 've-sdnetp2', kind: 'veth', peer: { name: 'sdnet-pp2' } });
    try {
      const [a, b] = await Promise.all(
        ['ve-sdnetp1', 've-sdnetp2'].map((n) =>
          configureContainerLink(sock, n, { seed: 'same', poolLock: `${tmp}/pool.lock` }),
        ),
      );
      expect(formatSubnet(a!.subnet)).not.toBe(formatSubnet(b!.subnet));
      // Configuring again keeps the address: one pool address per link.
      const again = await configureContainerLink(sock, 've-sdnetp1', {
        seed: 'other',
        poolLock: `${tmp}/pool.lock`,
      });
      expect(again.hostAddress).toBe(a!.hostAddress);
      const l = await getLink(sock, 've-sdnetp1');
      expect((await listAddresses(sock, { index: l!.index, family: AF.INET })).length).toBe(1);
    } finally {
      await deleteLink(sock, 've-sdnetp1');
      await deleteLink(sock, 've-sdnetp2');
    }
  });
});

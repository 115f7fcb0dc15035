import {
  AF,
  closeQuietly,
  ETH_P,
  htons,
  SOCK,
  sendto,
  sockaddrLl,
  socket,
  withNetworkNamespace,
} from '@sd/sys';
import { afterEach, describe, expect, it } from 'vitest';
import { type DhcpClient, type Ipv4ll, ipv4llCandidate, startDhcpClient, startIpv4ll } from '../src/index.js';
import { arpAnnounce } from '../src/ipv4ll/arp.js';
import { makeNsPair, type NsPair, once } from './netns-fixture.js';

const isRoot = process.getuid?.() === 0;
const FAST = { probeWait: 50, probeMin: 50, probeMax: 100, announceWait: 100, announceInterval: 100 };
const LL = /^169\.254\.(\d+)\.(\d+)$/;

function macOf(p: NsPair, ns: number, ifname: string): Buffer {
  const mac = JSON.parse(p.ip(ns, '-j', 'link', 'show', ifname))[0].address as string;
  return Buffer.from(mac.split(':').map((x) => Number.parseInt(x, 16)));
}

describe.skipIf(!isRoot)('IPv4 link-local (RFC 3927) on a veth pair', () => {
  let pair: NsPair | undefined;
  const running: Array<Ipv4ll | DhcpClient> = [];

  afterEach(async () => {
    for (const r of running.splice(0)) await r.stop();
    await pair?.cleanup();
    pair = undefined;
  });

  it('with no DHCP server answering, both ends fall back to 169.254.x.y and reach each other', async () => {
    pair = await makeNsPair();
    const p = pair;
    // The host end runs link-local from the start (networkd's LinkLocalAddressing= on ve-),
    // the container end as the fallback of its DHCP client; RFC 3927's own timings.
    const host = await startIpv4ll({ netnsFd: p.fdA, ifname: p.ifA });
    running.push(host);
    const client = await startDhcpClient({ netnsFd: p.fdB, ifname: p.ifB, linkLocalFallbackMs: 500 });
    running.push(client);
    const [h, c] = await Promise.all([
      once<{ address: string }>(host, 'bound', 15_000),
      once<{ address: string }>(client, 'linkLocal', 15_000),
    ]);
    expect(h.address).toMatch(LL);
    expect(c.address).toMatch(LL);
    expect(h.address).not.toBe(c.address);
    expect(client.lease).toBeUndefined();
    expect(p.addresses(p.nsA, p.ifA)).toEqual([`${h.address}/16`]);
    expect(p.addresses(p.nsB, p.ifB)).toEqual([`${c.address}/16`]);
    expect(p.ip(p.nsB, '-4', 'addr', 'show', 'dev', p.ifB)).toMatch(/scope link/);
    expect(await p.runAsync(p.nsB, ['busybox', 'ping', '-c1', '-W2', h.address])).toMatch(
      /1 packets received/,
    );
    expect(await p.runAsync(p.nsA, ['busybox', 'ping', '-c1', '-W2', c.address])).toMatch(
      /1 packets received/,
    );
    // stop() gives the addresses back.
    for (const r of running.splice(0)) await r.stop();
    expect(p.addresses(p.nsA, p.ifA)).toEqual([]);
    expect(p.addresses(p.nsB, p.ifB)).toEqual([]);
  }, 30_000);

  it('moves on to the next address when its first one is taken on the link', async () => {
    pair = await makeNsPair();
    const p = pair;
    const seed = Buffer.from('sddhcp-seed');
    const first = ipv4llCandidate(seed, 0);
    const second = ipv4llCandidate(seed, 1);
    p.ip(p.nsA, 'addr', 'add', `${first}/16`, 'dev', p.ifA);
    const ll = await startIpv4ll({ netnsFd: p.fdB, ifname: p.ifB, seed, timings: FAST });
    running.push(ll);
    const conflict = await once<{ address: string; mac: string; state: string }>(ll, 'conflict');
    expect(conflict).toEqual({
      address: first,
      mac: [...macOf(p, p.nsA, p.ifA)].map((x) => x.toString(16).padStart(2, '0')).join(':'),
      state: 'probing',
    });
    expect((await once<{ address: string }>(ll, 'bound')).address).toBe(second);
    expect(p.addresses(p.nsB, p.ifB)).toEqual([`${second}/16`]);
  });

  it('defends its address once, and gives it up at a second conflict within DEFEND_INTERVAL', async () => {
    pair = await makeNsPair();
    const p = pair;
    const seed = Buffer.from('sddhcp-defend');
    const ll = await startIpv4ll({ netnsFd: p.fdB, ifname: p.ifB, seed, timings: FAST });
    running.push(ll);
    const { address } = await once<{ address: string }>(ll, 'bound');
    await new Promise((r) => setTimeout(r, 300));
    expect(ll.state).toBe('bound');
    const macA = macOf(p, p.nsA, p.ifA);
    const [a, b, c, d] = address.split('.').map(Number) as [number, number, number, number];
    const ipNum = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
    const fd = withNetworkNamespace(p.fdA, () => socket(AF.PACKET, SOCK.DGRAM, htons(ETH_P.ARP)));
    try {
      const ifindex = JSON.parse(p.ip(p.nsA, '-j', 'link', 'show', p.ifA))[0].ifindex as number;
      const claim = () =>
        sendto(
          fd,
          arpAnnounce(macA, ipNum),
          sockaddrLl({ protocol: ETH_P.ARP, ifindex, addr: Buffer.alloc(6, 0xff) }),
        );
      const conflicts: string[] = [];
      ll.on('conflict', (e) => conflicts.push(e.address));
      claim();
      await new Promise((r) => setTimeout(r, 200));
      // Defended: still ours.
      expect(ll.state).toBe('bound');
      expect(ll.address).toBe(address);
      expect(p.addresses(p.nsB, p.ifB)).toEqual([`${address}/16`]);
      const lost = once<{ address: string }>(ll, 'lost');
      claim();
      expect((await lost).address).toBe(address);
      const next = await once<{ address: string }>(ll, 'bound');
      expect(next.address).toBe(ipv4llCandidate(seed, 1));
      expect(conflicts).toEqual([address]);
      expect(p.addresses(p.nsB, p.ifB)).toEqual([`${next.address}/16`]);
    } finally {
      closeQuietly(fd);
    }
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { type DhcpClient, type DhcpServer, startDhcpClient, startDhcpServer } from '../src/index.js';
import { makeNsPair, type NsPair, once } from './netns-fixture.js';

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('DHCP: our client against our server across a veth pair', () => {
  let pair: NsPair | undefined;
  let server: DhcpServer | undefined;
  let client: DhcpClient | undefined;

  afterEach(async () => {
    await client?.stop();
    server?.stop();
    await pair?.cleanup();
    client = server = pair = undefined;
  });

  function serve(p: NsPair, extra: { leaseTime?: number } = {}): DhcpServer {
    p.ip(p.nsA, 'addr', 'add', '10.77.0.1/28', 'dev', p.ifA);
    return startDhcpServer({
      netnsFd: p.fdA,
      links: [{ ifname: p.ifA, serverAddress: '10.77.0.1', prefixLength: 28, ...extra }],
    });
  }

  it('discovers, requests and binds: address and default route in the client namespace', async () => {
    pair = await makeNsPair();
    server = serve(pair);
    const leased = once<{ ifname: string; lease: { address: string } }>(server, 'lease');
    client = await startDhcpClient({ netnsFd: pair.fdB, ifname: pair.ifB, hostname: 'sddhcp-guest' });
    const lease = await once<{ address: string; router?: string; dns: string[]; prefixLength: number }>(
      client,
      'bound',
    );
    expect(lease.prefixLength).toBe(28);
    expect(lease.router).toBe('10.77.0.1');
    expect(lease.dns).toEqual(['10.77.0.1']);
    const a = lease.address.split('.').map(Number);
    expect(a.slice(0, 3)).toEqual([10, 77, 0]);
    expect(a[3]).toBeGreaterThanOrEqual(2);
    expect(a[3]).toBeLessThanOrEqual(14);
    expect((await leased).lease.address).toBe(lease.address);
    expect(pair.addresses(pair.nsB, pair.ifB)).toEqual([`${lease.address}/28`]);
    expect(pair.ip(pair.nsB, 'route', 'show', 'default')).toMatch(
      new RegExp(`default via 10.77.0.1 dev ${pair.ifB} proto dhcp src ${lease.address} metric 1024`),
    );
    expect(server.leases(pair.ifA).map((l) => l.hostname)).toEqual(['sddhcp-guest']);
    // The two ends reach each other.
    expect(pair.run(pair.nsB, ['busybox', 'ping', '-c1', '-W2', '10.77.0.1'])).toMatch(/1 packets received/);

    // stop(): RELEASE reaches the server, address and route are gone.
    const released = once<{ lease: { address: string } }>(server, 'release');
    await client.stop();
    client = undefined;
    expect((await released).lease.address).toBe(lease.address);
    expect(server.leases(pair.ifA)).toEqual([]);
    expect(pair.addresses(pair.nsB, pair.ifB)).toEqual([]);
    expect(pair.ip(pair.nsB, 'route', 'show', 'default')).toBe('');
  });
});

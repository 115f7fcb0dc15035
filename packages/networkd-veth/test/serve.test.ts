import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeQuietly } from '@sd/sys';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ConfiguredLink,
  DAEMON_CLAIM,
  type DhcpClient,
  dhcpClaimName,
  hostNameServers,
  LinkServers,
  networkdVethRunning,
  startDhcpClient,
  subnetOf,
  tryClaim,
} from '../src/index.js';
import { makeNsPair, type NsPair, once } from './netns-fixture.js';

// Who serves DHCP on a link: one server per link in a namespace, whoever
// asks (sd-nspawn, sd-networkd-veth), told by abstract-socket claims.

const isRoot = process.getuid?.() === 0;

describe('hostNameServers', () => {
  it('takes the resolv.conf name servers but loopback stubs, at most three', () => {
    const d = mkdtempSync(join(tmpdir(), 'sdnet-resolv-'));
    try {
      const f = join(d, 'resolv.conf');
      writeFileSync(
        f,
        '# x\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver 192.0.2.1\nnameserver ::1\nnameserver 198.51.100.2\nnameserver 203.0.113.3\nnameserver 203.0.113.4\n',
      );
      expect(hostNameServers(f)).toEqual(['192.0.2.1', '198.51.100.2', '203.0.113.3']);
      expect(hostNameServers(join(d, 'missing'))).toEqual([]);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!isRoot)('LinkServers: one DHCP server per link (in test namespaces)', () => {
  let pair: NsPair | undefined;
  const servers: LinkServers[] = [];
  let client: DhcpClient | undefined;

  afterEach(async () => {
    await client?.stop();
    for (const s of servers.splice(0)) s.close();
    await pair?.cleanup();
    client = pair = undefined;
  });

  const link = (p: NsPair): ConfiguredLink => ({
    name: p.ifA,
    index: 0,
    subnet: subnetOf('10.78.0.1', 28),
    hostAddress: '10.78.0.1',
    prefixLength: 28,
  });

  it('a second server in the namespace leaves a claimed link alone, and takes it over when the first goes', async () => {
    pair = await makeNsPair();
    pair.ip(pair.nsA, 'addr', 'add', '10.78.0.1/28', 'dev', pair.ifA);
    const first = new LinkServers({ netnsFd: pair.fdA, dns: [], retryMs: 100 });
    const second = new LinkServers({ netnsFd: pair.fdA, dns: [], retryMs: 100 });
    servers.push(first, second);
    expect(first.serve(link(pair))).toBe(true);
    expect(second.serve(link(pair))).toBe(false);
    client = await startDhcpClient({ netnsFd: pair.fdB, ifname: pair.ifB, configure: false });
    const lease = await once<{ address: string; dns: string[] }>(client, 'bound');
    expect(lease.dns).toEqual([]);
    // Only the claim holder answered: the other has no record of the client.
    expect(first.leases(pair.ifA).map((l) => l.address)).toEqual([lease.address]);
    expect(second.leases(pair.ifA)).toEqual([]);
    await client.stop();
    client = undefined;

    const taken = once<{ ifname: string }>(second, 'serving');
    first.close();
    expect((await taken).ifname).toBe(pair.ifA);
    expect(second.serves(pair.ifA)).toBe(true);
    client = await startDhcpClient({ netnsFd: pair.fdB, ifname: pair.ifB, configure: false });
    const again = await once<{ address: string }>(client, 'bound');
    expect(second.leases(pair.ifA).map((l) => l.address)).toEqual([again.address]);
  });

  it('the daemon claim is seen in its namespace only, and goes with its holder', async () => {
    pair = await makeNsPair();
    expect(networkdVethRunning(pair.fdA)).toBe(false);
    const claim = tryClaim(DAEMON_CLAIM, pair.fdA);
    expect(claim).toBeDefined();
    try {
      expect(networkdVethRunning(pair.fdA)).toBe(true);
      expect(networkdVethRunning(pair.fdB)).toBe(false);
      expect(tryClaim(DAEMON_CLAIM, pair.fdA)).toBeUndefined();
    } finally {
      claim?.release();
    }
    expect(networkdVethRunning(pair.fdA)).toBe(false);
  });

  it('an unprivileged process can neither pose as the daemon nor squat a claim', async () => {
    pair = await makeNsPair();
    const claim = tryClaim(DAEMON_CLAIM, pair.fdA)!;
    const path = claim.path;
    claim.release();
    // The file of a claim whose holder died (its fd closed, the file left), made by tryClaim itself.
    const stale = tryClaim(dhcpClaimName('sdnet-squat'), pair.fdA)!;
    const squat = stale.path;
    const fd = readdirSync('/proc/self/fd').find((f) => {
      try {
        return readlinkSync(`/proc/self/fd/${f}`) === squat;
      } catch {
        return false;
      }
    });
    closeQuietly(Number(fd));
    const asNobody = (cmd: string[]) =>
      spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...cmd], {
        encoding: 'utf8',
      });
    try {
      // Neither a new claim file nor a lock on one that is there.
      expect(asNobody(['sh', '-c', `: > ${path}`]).status).not.toBe(0);
      expect(asNobody(['flock', '-n', squat, 'sleep', '0']).status).not.toBe(0);
      expect(existsSync(path)).toBe(false);
      // Root can take it (the file is free).
      const again = tryClaim(dhcpClaimName('sdnet-squat'), pair.fdA);
      expect(again).toBeDefined();
      again?.release();
    } finally {
      rmSync(squat, { force: true });
    }
    expect(networkdVethRunning(pair.fdA)).toBe(false);
  });
});

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type DhcpServer, startDhcpServer } from '../src/index.js';
import { makeNsPair, type NsPair, once } from './netns-fixture.js';

/**
 * Real DHCP clients against our server: busybox udhcpc and ISC dhclient,
 * each run inside the client namespace with a script of ours that only
 * sets the address (their stock scripts would rewrite the host's
 * /etc/resolv.conf).
 */

const isRoot = process.getuid?.() === 0;
const UDHCPC = ['/usr/sbin/udhcpc', '/bin/busybox', '/usr/bin/busybox'].find(existsSync);
const DHCLIENT = ['/usr/sbin/dhclient', '/sbin/dhclient'].find(existsSync);

describe.skipIf(!isRoot)('DHCP: our server against real clients', () => {
  let pair: NsPair | undefined;
  let server: DhcpServer | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    if (dir && existsSync(join(dir, 'pid'))) {
      // dhclient forks into the background once bound; its pid file names it.
      const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
      if (pid > 1)
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
    }
    server?.stop();
    await pair?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
    server = pair = dir = undefined;
  });

  async function setup(): Promise<{ p: NsPair; s: DhcpServer; d: string }> {
    pair = await makeNsPair();
    pair.ip(pair.nsA, 'addr', 'add', '10.78.0.1/24', 'dev', pair.ifA);
    server = startDhcpServer({
      netnsFd: pair.fdA,
      links: [{ ifname: pair.ifA, serverAddress: '10.78.0.1', prefixLength: 24, leaseTime: 600 }],
    });
    dir = mkdtempSync(join(tmpdir(), 'sddhcp-'));
    return { p: pair, s: server, d: dir };
  }

  it.skipIf(!UDHCPC)('busybox udhcpc gets a lease with router, DNS and lease time', async () => {
    const { p, s, d } = await setup();
    const script = join(d, 'udhcpc.sh');
    writeFileSync(
      script,
      '#!/bin/sh\ncase "$1" in bound|renew) ip addr add "$ip/$mask" dev "$interface"; echo "LEASE $ip/$mask router=$router dns=$dns lease=$lease serverid=$serverid";; esac\n',
      { mode: 0o755 },
    );
    const applet = UDHCPC!.endsWith('busybox') ? [UDHCPC!, 'udhcpc'] : [UDHCPC!];
    const leased = once<{ lease: { address: string } }>(s, 'lease');
    const out = await p.runAsync(p.nsB, [
      ...applet,
      '-i',
      p.ifB,
      '-f',
      '-q',
      '-n',
      '-t',
      '5',
      '-T',
      '1',
      '-s',
      script,
    ]);
    const m =
      /LEASE (10\.78\.0\.\d+)\/24 router=10\.78\.0\.1 dns=10\.78\.0\.1 lease=600 serverid=10\.78\.0\.1/.exec(
        out,
      );
    expect(m, out).not.toBeNull();
    expect((await leased).lease.address).toBe(m![1]);
    expect(p.addresses(p.nsB, p.ifB)).toEqual([`${m![1]}/24`]);
    expect(s.leases(p.ifA).map((l) => l.address)).toEqual([m![1]]);
  });

  it.skipIf(!DHCLIENT)('ISC dhclient gets a lease, and its RELEASE frees it', async () => {
    const { p, s, d } = await setup();
    const script = join(d, 'dhclient.sh');
    writeFileSync(
      script,
      `#!/bin/sh\ncase "$reason" in BOUND|RENEW|REBOOT) ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"; echo "$new_ip_address $new_subnet_mask $new_routers $new_domain_name_servers $new_dhcp_lease_time" > ${d}/bound;; esac\n`,
      { mode: 0o755 },
    );
    const args = ['-sf', script, '-lf', join(d, 'leases'), '-pf', join(d, 'pid'), p.ifB];
    const leased = once<{ lease: { address: string } }>(s, 'lease');
    await p.runAsync(p.nsB, [DHCLIENT!, '-1', '-4', ...args]);
    const bound = readFileSync(join(d, 'bound'), 'utf8').trim().split(' ');
    expect(bound.slice(1)).toEqual(['255.255.255.0', '10.78.0.1', '10.78.0.1', '600']);
    expect((await leased).lease.address).toBe(bound[0]);
    expect(p.addresses(p.nsB, p.ifB)).toEqual([`${bound[0]}/24`]);
    const released = once<{ lease: { address: string } }>(s, 'release');
    await p.runAsync(p.nsB, [DHCLIENT!, '-r', ...args]);
    expect((await released).lease.address).toBe(bound[0]);
    expect(s.leases(p.ifA)).toEqual([]);
  });
});

import { type ChildProcess, spawn as spawnProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDhcpClient, startDhcpServer } from '@sd/networkd-veth';
import { elapsedMs } from '../lib/runners.js';
import { ms, summarize, table } from '../lib/stats.js';
import { LinkHandle, makeNs, type Ns, nsExec, startNetworkd } from './dhcp-lab.js';

/**
 * Time from "client starts on a link that is up" to "the link has its
 * address" (the RTM_NEWADDR notification), for each client (ours, busybox
 * udhcpc, ISC dhclient, systemd-networkd's own) against each server (ours,
 * systemd-networkd's DHCPServer=), in two namespaces joined by a veth pair.
 * systemd-networkd runs by hand in the namespaces. Runs of the clients are
 * interleaved so the machine's noise hits all alike.
 *
 *   npm run bench:dhcp -- [--runs 20]
 */

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '20' }, help: { type: 'boolean', short: 'h', default: false } },
});
if (values.help) {
  process.stdout.write('Usage: npm run bench:dhcp -- [--runs N]\n');
  process.exit(0);
}
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write(`bench: --runs must be a positive integer, not ${JSON.stringify(values.runs)}\n`);
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('bench: needs root (network namespaces, veth)\n');
  process.exit(1);
}

const NETWORKD = '/usr/lib/systemd/systemd-networkd';
const haveNetworkd = existsSync(NETWORKD);
const UDHCPC = ['/usr/sbin/udhcpc', '/bin/busybox'].find(existsSync);
const DHCLIENT = ['/usr/sbin/dhclient', '/sbin/dhclient'].find(existsSync);
const IF_A = 'sddhcpbencha';
const IF_B = 'sddhcpbenchb';

const dir = mkdtempSync(join(tmpdir(), 'sddhcp-bench-'));
const cleanups: Array<() => unknown> = [];
const results = new Map<string, number[]>();
const record = (client: string, server: string, v: number) => {
  const k = `${client}\0${server}`;
  results.set(k, [...(results.get(k) ?? []), v]);
};

function waitExit(c: ChildProcess): Promise<void> {
  return new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));
}

interface Client {
  name: string;
  run(b: LinkHandle): Promise<number>;
}

const ours: Client = {
  name: 'sd client',
  async run(b) {
    const got = b.nextAddress();
    const start = process.hrtime.bigint();
    const client = await startDhcpClient({ netnsFd: b.ns.fd, ifname: IF_B });
    try {
      await got;
      return elapsedMs(start);
    } finally {
      await client.stop();
    }
  },
};

function processClient(name: string, argv: () => string[], after?: () => void): Client {
  return {
    name,
    async run(b) {
      const got = b.nextAddress();
      const start = process.hrtime.bigint();
      const child = spawnProcess('nsenter', ['-t', String(b.ns.pid), '-n', ...argv()], { stdio: 'ignore' });
      try {
        await got;
        return elapsedMs(start);
      } finally {
        child.kill('SIGKILL');
        await waitExit(child);
        after?.();
        await b.flush();
      }
    },
  };
}

const addScript = join(dir, 'udhcpc.sh');
writeFileSync(
  addScript,
  '#!/bin/sh\n[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface"\nexit 0\n',
  {
    mode: 0o755,
  },
);
const dhScript = join(dir, 'dhclient.sh');
writeFileSync(
  dhScript,
  '#!/bin/sh\ncase "$reason" in BOUND|REBOOT) ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface";; esac\nexit 0\n',
  { mode: 0o755 },
);
const clients: Client[] = [ours];
if (UDHCPC)
  clients.push(
    processClient('busybox udhcpc', () => [
      ...(UDHCPC.endsWith('busybox') ? [UDHCPC, 'udhcpc'] : [UDHCPC]),
      ...['-i', IF_B, '-f', '-q', '-n', '-s', addScript],
    ]),
  );
if (DHCLIENT)
  clients.push(
    processClient(
      'ISC dhclient',
      () => [
        DHCLIENT,
        '-4',
        '-d',
        '-1',
        '-sf',
        dhScript,
        '-lf',
        join(dir, 'dh.leases'),
        '-pf',
        join(dir, 'dh.pid'),
        IF_B,
      ],
      () => rmSync(join(dir, 'dh.leases'), { force: true }),
    ),
  );

const networkFile = (name: string, body: string) =>
  `[Match]\nName=${name}\n\n[Network]\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n${body}`;

async function networkdClientRuns(b: LinkHandle, server: string): Promise<void> {
  // Down before networkd starts: every measured run begins with the link coming up.
  await b.setUp(false);
  await b.flush();
  const nd = await startNetworkd(b.ns, join(dir, 'nd-client'), {
    '10-b.network': networkFile(IF_B, 'DHCP=ipv4\n'),
  });
  try {
    for (let i = 0; i <= runs; i++) {
      const got = b.nextAddress();
      const start = process.hrtime.bigint();
      await b.setUp(true);
      await got.catch((e: Error) => {
        throw new Error(`${e.message}; systemd-networkd (client) said:\n${nd.log()}`);
      });
      // The first run is the warm-up.
      if (i > 0) record("systemd-networkd's client", server, elapsedMs(start));
      // Let it finish configuring (routes) before the link goes away again.
      await new Promise((r) => setTimeout(r, 300));
      await b.setUp(false);
      await new Promise((r) => setTimeout(r, 200));
      await b.flush();
    }
  } finally {
    nd.child.kill('SIGTERM');
    await waitExit(nd.child);
    await b.setUp(true);
    await b.flush();
  }
}

async function main(): Promise<void> {
  const A: Ns = await makeNs();
  cleanups.push(() => A.stop());
  const B: Ns = await makeNs();
  cleanups.push(() => B.stop());
  nsExec(A, ['ip', 'link', 'add', IF_A, 'type', 'veth', 'peer', 'name', IF_B, 'netns', String(B.pid)]);
  nsExec(A, ['ip', 'link', 'set', IF_A, 'up']);
  const b = new LinkHandle(B, IF_B);
  cleanups.push(() => b.close());
  await b.setUp(true);

  const servers: Array<{ name: string; start(): Promise<() => Promise<void>> }> = [
    {
      name: 'sd server',
      async start() {
        nsExec(A, ['ip', 'addr', 'add', '10.90.0.1/28', 'dev', IF_A]);
        const s = startDhcpServer({
          netnsFd: A.fd,
          links: [{ ifname: IF_A, serverAddress: '10.90.0.1', prefixLength: 28 }],
        });
        return async () => {
          s.stop();
          nsExec(A, ['ip', 'addr', 'flush', 'dev', IF_A]);
        };
      },
    },
  ];
  if (haveNetworkd)
    servers.push({
      name: 'networkd server',
      async start() {
        const nd = await startNetworkd(A, join(dir, 'nd-server'), {
          '10-a.network': networkFile(
            IF_A,
            'Address=10.90.0.1/28\nDHCPServer=yes\n\n[DHCPServer]\nEmitRouter=yes\n',
          ),
        });
        // Serving once its address is there.
        for (
          let i = 0;
          i < 100 && !nsExec(A, ['ip', '-4', 'addr', 'show', 'dev', IF_A]).includes('10.90.0.1');
          i++
        )
          await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 200));
        return async () => {
          nd.child.kill('SIGTERM');
          await waitExit(nd.child);
          nsExec(A, ['ip', 'addr', 'flush', 'dev', IF_A]);
        };
      },
    });

  for (const server of servers) {
    const stop = await server.start();
    try {
      // One warm-up run each (first-use costs: module loads, ARP caches).
      for (const c of clients) {
        process.stderr.write(`warm-up: ${c.name} against ${server.name}\n`);
        await c.run(b);
      }
      for (let i = 0; i < runs; i++) for (const c of clients) record(c.name, server.name, await c.run(b));
      if (haveNetworkd) await networkdClientRuns(b, server.name);
    } finally {
      await stop();
    }
  }

  const clientNames = [...new Set([...results.keys()].map((k) => k.split('\0')[0]!))];
  const rows = clientNames.map((c) => {
    const s = summarize(results.get(`${c}\0sd server`) ?? []);
    const n = summarize(results.get(`${c}\0networkd server`) ?? []);
    return [
      c,
      ms(s.median),
      ms(s.p90),
      ms(n.median),
      ms(n.p90),
      Number.isFinite(n.median) ? `${(s.median / n.median).toFixed(2)}x` : '-',
    ];
  });
  process.stdout.write(
    `DHCP: client start (networkd's client: link up) to address on the link, ${runs} runs each\n\n${table(
      ['client', 'sd server median', 'p90', 'networkd server median', 'p90', 'sd/networkd'],
      rows,
    )}\n`,
  );
}

try {
  await main();
} finally {
  for (const c of cleanups.reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
}
// Child processes' pipes (networkd's stderr) can outlive them; the bench is done.
process.exit(process.exitCode ?? 0);

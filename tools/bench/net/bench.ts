import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, constants, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DAEMON_CLAIM, onNetworkStep, tryClaim } from '@sd/networkd-veth';
import { CLONE, closeQuietly, openNamespace, openRouteSocket, setLink, setns } from '@sd/sys';
import { ReferenceCgroup } from '../lib/reference-cgroup.js';
import { type BenchRoot, findBusybox, makeBusyboxRoot, removeRoot } from '../lib/rootfs.js';
import { elapsedMs, have, nodeStartNote } from '../lib/runners.js';
import { ms, summarize, table } from '../lib/stats.js';
import { makeNs, type Ns, startNetworkd } from './dhcp-lab.js';
import { StepTable } from './step-table.js';

/**
 * Container networking: time from starting the container to "host0 has an
 * IPv4 address from DHCP", seen from inside (the payload exits once host0
 * has one). All of it runs in a network namespace this benchmark makes; the
 * host's network is never touched.
 *
 * Two servers, in the same run, one after the other:
 *   ours      sd-nspawn's in-process server (no sd-networkd-veth here)
 *   networkd  systemd-networkd run by hand in the namespace with the shipped
 *             80-container-ve.network; the bench holds @sd-networkd-veth/daemon
 *             so that sd-nspawn serves nothing itself
 * Clients:
 *   our client  sd-nspawn -n, a plain payload: our client leases host0 before it runs
 *   udhcpc      sd-nspawn -n -b with an init that runs busybox udhcpc (with --boot
 *               the guest owns host0; ours stays out)
 * and, with networkd, systemd-nspawn -n -b with the same udhcpc init: the
 * systemd stack end to end. Plus the library (startContainer() to exec) and
 * --private-network (the same start without links).
 *
 * Target (issue 13): <= 100 ms from `sd-nspawn -n` start to address with our
 * client; at or below networkd with each client.
 *
 *   npx tsx tools/bench/net/bench.ts [--runs 20] [--nspawn path/to/sd-nspawn.cjs] [--baseline other/sd-nspawn.cjs]
 */

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    // Another build's bin (a copy of packages/nspawn/dist), to compare before and after.
    nspawn: { type: 'string' },
    // A build to compare with in the same run: its -n and --private-network rows take turns with ours.
    baseline: { type: 'string' },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write('bench: --runs must be a positive integer\n');
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('bench: needs root\n');
  process.exit(1);
}
// sd-nspawn's bin, as users run it (the code-cache launcher of dist/cli.cjs, as tools/bench/start runs it).
const NSPAWN_CLI =
  values.nspawn ?? fileURLToPath(new URL('../../../packages/nspawn/dist/sd-nspawn.cjs', import.meta.url));
const busybox = findBusybox();
if (!busybox) {
  process.stderr.write('bench: busybox is not installed\n');
  process.exit(1);
}

// A FIFO at the tree's root: the payload writes a line to it once host0 has an IPv4 address,
// and the bench notes when that line arrives (to well under a millisecond; the container's
// clock cannot be read finer than /proc/uptime's 10 ms steps).
const ADDRESS_FIFO = '/.sd-bench-address';
// Exits once host0 has an IPv4 address, saying so through the FIFO.
const WAIT_FOR_ADDRESS = `until ip -4 addr show host0 2>/dev/null | grep -q "inet "; do :; done; echo address > ${ADDRESS_FIFO}`;
// The guest's own client as init: brings host0 up, leases, exits once configured.
const UDHCPC_INIT = `#!/bin/sh
udhcpc -i host0 -f -q -n -t 20 -T 1 -s /udhcpc.sh >/dev/null 2>&1 || exit 1
${WAIT_FOR_ADDRESS}
exit 0
`;
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig) ip link set "$interface" up; ip -4 addr flush dev "$interface" ;;
  bound|renew) ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "\${router%% *}" dev "$interface" ;;
esac
exit 0
`;
const VE_NETWORK = existsSync('/usr/lib/systemd/network/80-container-ve.network')
  ? readFileSync('/usr/lib/systemd/network/80-container-ve.network', 'utf8')
  : '[Match]\nName=ve-*\nDriver=veth\n\n[Network]\nAddress=0.0.0.0/28\nLinkLocalAddressing=yes\nDHCPServer=yes\nIPMasquerade=both\n';

/** Runs one start; resolves with ms to exit and ms to "host0 has an address" (when the payload says). */
function run(ns: Ns, cmd: string, args: string[]): Promise<{ exit: number; address?: number }> {
  return new Promise((resolve, reject) => {
    // Read and write: the FIFO then never reads as closed before the payload writes.
    const fifo = new Socket({
      fd: openSync(`${root.rootfs}${ADDRESS_FIFO}`, constants.O_RDWR | constants.O_NONBLOCK),
      readable: true,
      writable: false,
    });
    let address: number | undefined;
    const start = process.hrtime.bigint();
    fifo.on('data', () => {
      address ??= elapsedMs(start);
    });
    const child = spawn('nsenter', [`--net=/proc/${ns.pid}/ns/net`, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stdout.resume();
    child.stderr.on('data', (d) => (stderr += d));
    let t = 0;
    child.once('exit', () => (t = elapsedMs(start)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      fifo.destroy();
      if (code === 0) resolve({ exit: t, ...(address !== undefined ? { address } : {}) });
      else reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${stderr.trim().slice(-400)}`));
    });
  });
}

const root: BenchRoot = makeBusyboxRoot(busybox, 'net');
// busybox --install made sbin/init a symlink to /bin/busybox: remove the link itself first, so that
// the write can never follow it out of the tree (an absolute link resolves on the host).
rmSync(join(root.rootfs, 'sbin/init'), { force: true });
writeFileSync(join(root.rootfs, 'sbin/init'), UDHCPC_INIT, { flag: 'wx' });
chmodSync(join(root.rootfs, 'sbin/init'), 0o755);
writeFileSync(join(root.rootfs, 'udhcpc.sh'), UDHCPC_SCRIPT, { flag: 'wx' });
chmodSync(join(root.rootfs, 'udhcpc.sh'), 0o755);
const made = spawnSync('mkfifo', ['-m', '0666', `${root.rootfs}${ADDRESS_FIFO}`], { encoding: 'utf8' });
if (made.status !== 0) throw new Error(`bench: mkfifo: ${made.stderr}`);
const nd = join(tmpdir(), `sd-bench-networkd-${process.pid}`);
// The tree goes also when the namespace cannot be made.
const ns = await makeNs().catch((e: unknown) => {
  removeRoot(root);
  throw e;
});
const sdWith = (cli: string, ...a: string[]): [string, string[]] => [
  process.execPath,
  [cli, '-q', '--register=no', '-D', root.rootfs, '-M', 'sdnet-bench', ...a],
];
const sd = (...a: string[]): [string, string[]] => sdWith(NSPAWN_CLI, ...a);
const baseline = values.baseline;
type Row = { name: string; server: string; note: string; args: () => [string, string[]] };
const ourClient: Omit<Row, 'server'> = {
  name: 'sd-nspawn -n, our client',
  note: 'start to host0 has a lease (payload exits on it)',
  args: () => sd('-n', '/bin/sh', '-c', WAIT_FOR_ADDRESS),
};
const udhcpc: Omit<Row, 'server'> = {
  name: 'sd-nspawn -n -b, udhcpc',
  note: "start to host0 has udhcpc's lease",
  args: () => sd('-n', '-b'),
};
const samples = new Map<string, number[]>();
const add = (k: string, v: number) => samples.set(k, [...(samples.get(k) ?? []), v]);
const rows: Row[] = [];
// Where the library's time goes, step by step (@sd/networkd-veth's marks).
const steps = new StepTable();
try {
  const s = openRouteSocket(ns.fd);
  await setLink(s, 1, { up: true });
  s.close();

  // 1. Our server (in sd-nspawn).
  const ours: Row[] = [
    { ...ourClient, server: 'ours' },
    { ...udhcpc, server: 'ours' },
    {
      name: 'sd-nspawn --private-network',
      server: '-',
      note: 'start to exit of /bin/true, no links',
      args: () => sd('--private-network', '/bin/true'),
    },
  ];
  if (baseline)
    ours.push(
      {
        ...ourClient,
        name: 'baseline: sd-nspawn -n, our client',
        server: 'ours',
        args: () => sdWith(baseline, '-n', '/bin/sh', '-c', WAIT_FOR_ADDRESS),
      },
      {
        name: 'baseline: --private-network',
        server: '-',
        note: 'the same, with the --baseline build',
        args: () => sdWith(baseline, '--private-network', '/bin/true'),
      },
    );
  const theirs: Row[] = [
    { ...ourClient, server: 'networkd' },
    { ...udhcpc, server: 'networkd' },
  ];
  if (have('systemd-nspawn'))
    theirs.push({
      name: 'systemd-nspawn -n -b, udhcpc',
      server: 'networkd',
      note: 'the systemd stack: start to host0 has a lease',
      args: () => [
        'systemd-nspawn',
        ['-q', '--register=no', '--keep-unit', '-D', root.rootfs, '-M', 'sdnet-bench', '-n', '-b'],
      ],
    });
  const measure = async (r: Row) => {
    let [cmd, args] = r.args();
    // The reference in a cgroup of its own, removed after it (ReferenceCgroup).
    const cg = cmd === 'systemd-nspawn' ? new ReferenceCgroup('net') : undefined;
    if (cg) [cmd, args] = cg.argv(cmd, args);
    const m = await run(ns, cmd, args).finally(() => cg?.remove());
    add(`${r.server}|${r.name}`, m.exit);
    if (m.address !== undefined) add(`${r.server}|${r.name}|address`, m.address);
  };
  const { parseArgv, startContainer } = await import('@sd/nspawn');
  // The two servers take turns in every iteration, so that the machine's load falls on both alike.
  for (let i = 0; i < runs; i++) {
    for (const r of ours) await measure(r);
    // The library in this process, its main thread in the bench namespace for the run.
    const { settings, explicit } = parseArgv([
      '-q',
      '--register=no',
      '-D',
      root.rootfs,
      '-M',
      'sdnet-bench',
      '-n',
      '/bin/true',
    ]);
    const own = openNamespace('thread-self', 'net');
    setns(ns.fd, CLONE.NEWNET);
    const marks: Array<[string, number]> = [];
    const off = onNetworkStep((step, at) => marks.push([step, at]));
    try {
      const start = process.hrtime.bigint();
      const t0 = performance.now();
      // Resolves when the payload has exec'd: host0 got its lease before that.
      const { exited } = await startContainer(settings, { explicit, stdio: [0, 1, 2] });
      add('ours|library -n, our client', elapsedMs(start));
      steps.add(
        marks.map(([step, at]) => [step, at - t0]),
        ['exec', performance.now() - t0],
      );
      await exited;
    } finally {
      off();
      setns(own, CLONE.NEWNET);
      closeQuietly(own);
    }

    // systemd-networkd as the server; sd-nspawn sees a "daemon" and serves nothing.
    const claim = tryClaim(DAEMON_CLAIM, ns.fd);
    if (claim === undefined)
      throw new Error('bench: @sd-networkd-veth/daemon is taken in the bench namespace');
    try {
      const networkd = await startNetworkd(ns, nd, { '80-container-ve.network': VE_NETWORK });
      try {
        for (const r of theirs) await measure(r);
      } finally {
        networkd.child.kill('SIGTERM');
        await new Promise((r) =>
          networkd.child.exitCode !== null ? r(null) : networkd.child.once('exit', r),
        );
      }
    } finally {
      claim.release();
    }
  }
  rows.push(
    ...ours,
    {
      name: 'library -n, our client',
      server: 'ours',
      note: 'startContainer() to exec; host0 has its lease before it',
      args: () => ['', []],
    },
    ...theirs,
  );
  const out = rows.map((r) => {
    const e = summarize(samples.get(`${r.server}|${r.name}`)!);
    const a = samples.get(`${r.server}|${r.name}|address`);
    const as = a ? summarize(a) : undefined;
    return [
      r.name,
      r.server,
      as ? ms(as.median) : '-',
      as ? ms(as.p90) : '-',
      ms(e.median),
      ms(e.min),
      r.note,
    ];
  });
  process.stdout.write(
    `${table(['contender', 'server', 'to address', 'p90', 'to exit', 'min exit', 'measures'], out)}\n\n`,
  );
  process.stdout.write(
    "to address: from spawning the command to the payload's line through a FIFO once it sees host0's address\n",
  );
  const note = nodeStartNote();
  if (note) process.stdout.write(`note: ${note}\n`);
  process.stdout.write(
    `\n${steps.format('library -n: network step (ends at: since startContainer)')}\n(tools/bench/net/steps.ts --cold: the same for a fresh process per start, as the CLI)\n\n`,
  );
  const med = (k: string) => summarize(samples.get(k)!).median;
  const o = med('ours|sd-nspawn -n, our client|address');
  process.stdout.write(
    `sd-nspawn -n start to address, our client: ${ms(o)} (target <= 100 ms: ${o <= 100 ? 'met' : 'missed'})\n`,
  );
  for (const c of ['sd-nspawn -n, our client', 'sd-nspawn -n -b, udhcpc']) {
    const a = med(`ours|${c}|address`);
    const b = med(`networkd|${c}|address`);
    process.stdout.write(
      `${c}: our server ${ms(a)} vs networkd ${ms(b)} (${a <= b ? 'at or below' : 'above'} networkd)\n`,
    );
  }
  // What the network adds: -n's time to address over --private-network's time to exit (its
  // /bin/true exits at once), both started the same way, in the same run.
  const cost = (prefix: string, p: string) =>
    med(`ours|${prefix}sd-nspawn -n, our client|address`) - med(`-|${p}`);
  process.stdout.write(
    `network's cost (-n to address minus --private-network to exit): ${ms(cost('', 'sd-nspawn --private-network'))}`,
  );
  if (baseline) process.stdout.write(`; baseline ${ms(cost('baseline: ', 'baseline: --private-network'))}`);
  process.stdout.write(
    `; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
} finally {
  await ns.stop();
  rmSync(nd, { recursive: true, force: true });
  removeRoot(root);
}

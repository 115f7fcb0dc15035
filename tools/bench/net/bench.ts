import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  CLONE,
  closeQuietly,
  createNetworkNamespace,
  openNamespace,
  openRouteSocket,
  setLink,
  setns,
} from '@sd/sys';
import { type BenchRoot, findBusybox, makeBusyboxRoot, removeRoot } from '../lib/rootfs.js';
import { elapsedMs, have } from '../lib/runners.js';
import { ms, summarize, table } from '../lib/stats.js';

/**
 * Container networking: time from starting the container to "host0 has an
 * IPv4 address", seen from inside (the payload polls `ip -4 addr show
 * host0` and exits when it has one). All of it runs in a network namespace
 * this benchmark makes; the host's network is never touched.
 *
 *   sd-nspawn -n           ve-/host0, pool address, masquerade; host0 configured by the
 *                          supervisor before the payload runs (the static addressing that
 *                          the DHCP client replaces)
 *   sd-nspawn --private-network   the same start without links: the cost of networking
 *   systemd-nspawn -n      link creation only (no systemd-networkd here: host0 gets no
 *                          address, so its payload is /bin/true), for the cost of the links
 *
 * Target (issue 13): <= 100 ms from `sd-nspawn -n` start to address.
 *
 *   npx tsx tools/bench/net/bench.ts [--runs 20]
 */

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write('bench: --runs must be a positive integer\n');
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('bench: needs root\n');
  process.exit(1);
}
const NSPAWN_CLI = fileURLToPath(new URL('../../../packages/nspawn/dist/cli.cjs', import.meta.url));
const busybox = findBusybox();
if (!busybox) {
  process.stderr.write('bench: busybox is not installed\n');
  process.exit(1);
}

const WAIT_FOR_ADDRESS = 'until ip -4 addr show host0 2>/dev/null | grep -q inet; do :; done';

function run(ns: number, cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn('nsenter', [`--net=/proc/${process.pid}/fd/${ns}`, cmd, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    let t = 0;
    child.once('exit', () => (t = elapsedMs(start)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(t);
      else reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${stderr.trim().slice(-400)}`));
    });
  });
}

const root: BenchRoot = makeBusyboxRoot(busybox, 'net');
const ns = createNetworkNamespace();
try {
  const s = openRouteSocket(ns);
  await setLink(s, 1, { up: true });
  s.close();
  const contenders: Array<{ name: string; note: string; args: () => [string, string[]] }> = [
    {
      name: 'sd-nspawn -n',
      note: 'start to host0 has its address (inside)',
      args: () => [
        process.execPath,
        [
          NSPAWN_CLI,
          '-q',
          '--register=no',
          '-D',
          root.rootfs,
          '-M',
          'sdnet-bench',
          '-n',
          '/bin/sh',
          '-c',
          WAIT_FOR_ADDRESS,
        ],
      ],
    },
    {
      name: 'sd-nspawn --private-network',
      note: 'start to exit of /bin/true, no links',
      args: () => [
        process.execPath,
        [
          NSPAWN_CLI,
          '-q',
          '--register=no',
          '-D',
          root.rootfs,
          '-M',
          'sdnet-bench',
          '--private-network',
          '/bin/true',
        ],
      ],
    },
  ];
  if (have('systemd-nspawn'))
    contenders.push({
      name: 'systemd-nspawn -n',
      note: 'start to exit of /bin/true (links only, no networkd)',
      args: () => [
        'systemd-nspawn',
        ['-q', '--register=no', '--keep-unit', '-D', root.rootfs, '-M', 'sdnet-bench', '-n', '/bin/true'],
      ],
    });
  const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  const library = ['library -n', 'library --private-network'];
  for (const l of library) samples.set(l, []);
  const { parseArgv, startContainer } = await import('@sd/nspawn');
  for (let i = 0; i < runs; i++) {
    for (const c of contenders) {
      const [cmd, args] = c.args();
      samples.get(c.name)!.push(await run(ns, cmd, args));
    }
    // The library in this process, its main thread in the benchmark's namespace for the run
    // (links and nft go where the main thread is; containers get namespaces of their own).
    for (const [name, opt] of [
      ['library -n', '-n'],
      ['library --private-network', '--private-network'],
    ] as const) {
      const { settings, explicit } = parseArgv([
        '-q',
        '--register=no',
        '-D',
        root.rootfs,
        '-M',
        'sdnet-bench',
        opt,
        '/bin/true',
      ]);
      const own = openNamespace('thread-self', 'net');
      setns(ns, CLONE.NEWNET);
      try {
        const start = process.hrtime.bigint();
        // Resolves when the payload has exec'd: host0 got its address before that.
        const { exited } = await startContainer(settings, { explicit, stdio: [0, 1, 2] });
        samples.get(name)!.push(elapsedMs(start));
        await exited;
      } finally {
        setns(own, CLONE.NEWNET);
        closeQuietly(own);
      }
    }
  }
  contenders.push(
    {
      name: 'library -n',
      note: 'startContainer() to exec; host0 is configured before it',
      args: () => ['', []],
    },
    { name: 'library --private-network', note: 'startContainer() to exec, no links', args: () => ['', []] },
  );
  const rows = contenders.map((c) => {
    const s = summarize(samples.get(c.name)!);
    return [c.name, ms(s.median), ms(s.p90), ms(s.min), c.note];
  });
  process.stdout.write(`${table(['contender', 'median', 'p90', 'min', 'measures'], rows)}\n`);
  const ours = summarize(samples.get('sd-nspawn -n')!).median;
  process.stdout.write(
    `\nsd-nspawn -n start to address: ${ms(ours)} (target <= 100 ms: ${ours <= 100 ? 'met' : 'missed'})\n`,
  );
} finally {
  closeQuietly(ns);
  removeRoot(root);
}

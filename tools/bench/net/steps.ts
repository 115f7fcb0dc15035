import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { onNetworkStep } from '@sd/networkd-veth';
import { CLONE, closeQuietly, O, open, openRouteSocket, setLink, setns } from '@sd/sys';
import { findBusybox, makeBusyboxRoot, removeRoot } from '../lib/rootfs.js';
import { ms, summarize, table } from '../lib/stats.js';
import { makeNs } from './dhcp-lab.js';
import { StepTable } from './step-table.js';

/**
 * Where the library's time to an address goes: startContainer(-n) in a
 * network namespace of the bench's own, every step of the network setup
 * marked (@sd/networkd-veth's onNetworkStep), medians of when each step
 * ended (since startContainer was called) and of how long it took since
 * the mark before it. Beside it, the same start with --private-network
 * and no links: the difference is what the network costs.
 *
 * Warm (default): every start in this process after one warm-up, as a
 * daemon or a test would start containers. --cold: every start in a fresh
 * process, as the CLI starts one (modules, libnftables and JIT all cold):
 * plain node on the built packages (steps-child.mjs; run `npm run build`
 * first), without a code cache (the CLI has one: its compile time is not
 * the network's).
 *
 *   npx tsx tools/bench/net/steps.ts [--runs 20] [--cold]
 */

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    cold: { type: 'boolean', default: false },
    // With --cold: a V8 CPU profile of every start process, in this directory.
    profile: { type: 'string' },
  },
  allowPositionals: true,
});

type Result = { marks: Array<[string, number]>; exec: number; cpu: number };

/** One start in the namespace of `nsPath`; the marks relative to the call, and the wall and CPU time to exec. */
async function once(rootfs: string, nsPath: string, args: string[]): Promise<Result> {
  const { parseArgv, startContainer } = await import('@sd/nspawn');
  const { settings, explicit } = parseArgv([
    '-q',
    '--register=no',
    '-D',
    rootfs,
    '-M',
    'sdnet-steps',
    ...args,
    '/bin/true',
  ]);
  const marks: Array<[string, number]> = [];
  const off = onNetworkStep((s, at) => marks.push([s, at]));
  const target = open(nsPath, O.RDONLY | O.CLOEXEC);
  const own = open('/proc/thread-self/ns/net', O.RDONLY | O.CLOEXEC);
  setns(target, CLONE.NEWNET);
  try {
    const cpu = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    const c0 = cpu();
    const t0 = performance.now();
    const { exited } = await startContainer(settings, { explicit, stdio: [0, 1, 2] });
    const exec = performance.now() - t0;
    const used = cpu() - c0;
    await exited;
    return { marks: marks.map(([s, at]) => [s, at - t0]), exec, cpu: used };
  } finally {
    off();
    setns(own, CLONE.NEWNET);
    closeQuietly(own, target);
  }
}

const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write('steps: --runs must be a positive integer\n');
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('steps: needs root\n');
  process.exit(1);
}
const busybox = findBusybox();
if (!busybox) {
  process.stderr.write('steps: busybox is not installed\n');
  process.exit(1);
}

const root = makeBusyboxRoot(busybox, 'netsteps');
// The tree goes also when the namespace cannot be made.
const ns = await makeNs().catch((e: unknown) => {
  removeRoot(root);
  throw e;
});
const nsPath = `/proc/${ns.pid}/ns/net`;
const child = fileURLToPath(new URL('./steps-child.mjs', import.meta.url));

/** A start in a process of its own: plain node, the built packages. */
function coldOnce(args: string[]): Result {
  const r = spawnSync(
    process.execPath,
    [
      ...(values.profile
        ? ['--cpu-prof', '--cpu-prof-interval=400', `--cpu-prof-dir=${values.profile}`]
        : []),
      child,
      JSON.stringify([root.rootfs, ...args]),
    ],
    {
      encoding: 'utf8',
      env: { ...process.env, SD_STEPS_NETNS: nsPath },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const line = /^STEPS (.*)$/m.exec(r.stdout ?? '')?.[1];
  if (r.status !== 0 || !line) throw new Error(`steps: a cold start failed (exit ${r.status})`);
  return JSON.parse(line) as Result;
}

const start = (args: string[]) =>
  values.cold ? Promise.resolve(coldOnce(args)) : once(root.rootfs, nsPath, args);

try {
  const s = openRouteSocket(ns.fd);
  await setLink(s, 1, { up: true });
  s.close();
  if (!values.cold) {
    // One warm-up of each: module loading and libnftables' first load are not a container's cost here.
    await start(['-n']);
    await start(['--private-network']);
  }
  const steps = new StepTable();
  const exec = { n: [] as number[], p: [] as number[], nCpu: [] as number[], pCpu: [] as number[] };
  let slow = 0;
  for (let i = 0; i < runs; i++) {
    const n = await start(['-n']);
    // A start that took far longer than the rest (a lost DHCP message, ~1 s): its marks say where.
    if (n.exec > 500) {
      slow++;
      process.stderr.write(
        `slow start (${ms(n.exec)}): ${n.marks.map(([s, t]) => `${s} @${t.toFixed(1)}`).join(', ')}\n`,
      );
    }
    exec.n.push(n.exec);
    exec.nCpu.push(n.cpu);
    steps.add(n.marks, ['exec', n.exec]);
    const p = await start(['--private-network']);
    exec.p.push(p.exec);
    exec.pCpu.push(p.cpu);
  }
  const mode = values.cold ? 'cold, a process per start' : 'warm, one process';
  process.stdout.write(`${steps.format(`step (library -n /bin/true, ${mode})`)}\n\n`);
  const med = (v: number[]) => summarize(v).median;
  const sum = [
    ['-n', ms(med(exec.n)), ms(summarize(exec.n).p90), ms(med(exec.nCpu))],
    ['--private-network', ms(med(exec.p)), ms(summarize(exec.p).p90), ms(med(exec.pCpu))],
    ['network costs', ms(med(exec.n) - med(exec.p)), '', ms(med(exec.nCpu) - med(exec.pCpu))],
  ];
  process.stdout.write(
    `${table(['startContainer() to exec', 'wall median', 'wall p90', 'CPU (main process)'], sum)}\n`,
  );
  process.stdout.write(
    `runs ${runs}, slow starts (> 500 ms) ${slow}; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
} finally {
  await ns.stop();
  removeRoot(root);
}

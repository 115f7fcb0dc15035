import { parseArgs } from 'node:util';
import { onNetworkStep } from '@sd/networkd-veth';
import { CLONE, closeQuietly, openNamespace, openRouteSocket, setLink, setns } from '@sd/sys';
import { findBusybox, makeBusyboxRoot, removeRoot } from '../lib/rootfs.js';
import { ms, summarize, table } from '../lib/stats.js';
import { makeNs } from './dhcp-lab.js';

/**
 * Where the library's time to an address goes: startContainer(-n) in a
 * network namespace of the bench's own, every step of the network setup
 * marked (@sd/networkd-veth's onNetworkStep), medians of when each step
 * ended (since startContainer was called) and of how long it took since
 * the mark before it. Beside it, the same start with --private-network
 * and no links: the difference is what the network costs.
 *
 *   npx tsx tools/bench/net/steps.ts [--runs 20]
 */

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' } } });
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

const { parseArgv, startContainer } = await import('@sd/nspawn');
const root = makeBusyboxRoot(busybox, 'netsteps');
const ns = await makeNs();
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** One start in the bench namespace; the marks relative to the call, and the wall and CPU time to exec. */
async function once(args: string[]): Promise<{ marks: Array<[string, number]>; exec: number; cpu: number }> {
  const { settings, explicit } = parseArgv([
    '-q',
    '--register=no',
    '-D',
    root.rootfs,
    '-M',
    'sdnet-steps',
    ...args,
    '/bin/true',
  ]);
  const marks: Array<[string, number]> = [];
  const off = onNetworkStep((s, at) => marks.push([s, at]));
  const own = openNamespace('thread-self', 'net');
  setns(ns.fd, CLONE.NEWNET);
  try {
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
    closeQuietly(own);
  }
}

try {
  const s = openRouteSocket(ns.fd);
  await setLink(s, 1, { up: true });
  s.close();
  // One warm-up of each: module loading and libnftables' first load are not a container's cost.
  await once(['-n']);
  await once(['--private-network']);
  const at = new Map<string, number[]>();
  const delta = new Map<string, number[]>();
  const order: string[] = [];
  const push = (m: Map<string, number[]>, k: string, v: number) => m.set(k, [...(m.get(k) ?? []), v]);
  const exec = { n: [] as number[], p: [] as number[], nCpu: [] as number[], pCpu: [] as number[] };
  for (let i = 0; i < runs; i++) {
    const n = await once(['-n']);
    exec.n.push(n.exec);
    exec.nCpu.push(n.cpu);
    let prev = 0;
    for (const [step, t] of [...n.marks, ['exec', n.exec] as [string, number]]) {
      if (!order.includes(step)) order.push(step);
      push(at, step, t);
      push(delta, step, t - prev);
      prev = t;
    }
    const p = await once(['--private-network']);
    exec.p.push(p.exec);
    exec.pCpu.push(p.cpu);
  }
  const rows = order.map((step) => [
    step,
    ms(summarize(at.get(step)!).median),
    ms(summarize(delta.get(step)!).median),
    String(at.get(step)!.length),
  ]);
  process.stdout.write(`${table(['step (library, -n /bin/true)', 'ends at', 'took', 'runs'], rows)}\n\n`);
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
    `runs ${runs}; load ${(await import('node:os'))
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
} finally {
  await ns.stop();
  removeRoot(root);
}

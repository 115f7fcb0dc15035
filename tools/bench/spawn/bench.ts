import type { ChildProcess } from 'node:child_process';
import { release } from 'node:os';
import { parseArgs } from 'node:util';
import { type BenchRoot, findBusybox, makeBusyboxRoot, removeRoot } from '../lib/rootfs.js';
import {
  aptInstall,
  cgroup2Holder,
  crunRunner,
  have,
  nspawnRunner,
  type Runner,
  unifiedCgroups,
} from '../lib/runners.js';
import { ms, summarize, table } from '../lib/stats.js';
import { sdSpawnRunner, unshareRunner } from './runners.js';

/**
 * Container start, /bin/true in a busybox root, start to exit: ours from
 * this running process against unshare, crun and systemd-nspawn, runs
 * interleaved so that the machine's noise hits all of them alike.
 *
 *   npm run bench:spawn -- [--runs 200] [--install]
 */

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '200' },
    install: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write('Usage: npm run bench:spawn -- [--runs N] [--install]\n');
  process.exit(0);
}
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write(`bench: --runs must be a positive integer, not ${JSON.stringify(values.runs)}\n`);
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('bench: needs root (namespaces, chroot, crun, systemd-nspawn)\n');
  process.exit(1);
}

if (values.install) aptInstall(['busybox-static', 'crun', 'systemd-container']);

let root: BenchRoot | undefined;
let holder: ChildProcess | undefined;
const runners: Runner[] = [];
let cleanedUp = false;
function cleanup(): void {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const r of runners) r.cleanup?.();
  holder?.kill('SIGKILL');
  if (root) removeRoot(root);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
    cleanup();
    process.exit(130);
  });
}

async function main(): Promise<void> {
  const busybox = findBusybox();
  if (!busybox) throw new Error('busybox not found: apt-get install busybox-static (or pass --install)');
  root = makeBusyboxRoot(busybox);
  process.stdout.write(`bench: busybox root in ${root.rootfs}; kernel ${release()}; ${runs} runs each\n`);

  const candidates: Array<[string, () => Runner]> = [
    ['unshare', () => unshareRunner(root!.rootfs)],
    ['crun', () => crunRunner(root!.dir, root!.rootfs, { nsenterPid: holder?.pid })],
    ['systemd-nspawn', () => nspawnRunner(root!.rootfs)],
  ];
  if (have('crun') && !unifiedCgroups()) holder = await cgroup2Holder();
  runners.push(sdSpawnRunner(root.rootfs));
  for (const [cmd, make] of candidates) {
    if (have(cmd)) runners.push(make());
    else process.stdout.write(`bench: ${cmd} is not installed, skipping it (--install gets it)\n`);
  }

  // One warm-up run each; a tool that cannot run here is reported and dropped.
  const active: Runner[] = [];
  for (const r of runners) {
    try {
      await r.run();
      active.push(r);
    } catch (e) {
      if (r === runners[0]) throw e;
      process.stdout.write(`bench: ${r.name} fails here, skipping it: ${(e as Error).message}\n`);
    }
  }

  const samples = new Map<Runner, number[]>(active.map((r) => [r, []]));
  for (let i = 0; i < runs; i++) {
    // Rotate who goes first so no tool always runs right after another.
    for (let j = 0; j < active.length; j++) {
      const r = active[(i + j) % active.length]!;
      samples.get(r)!.push(await r.run());
    }
  }

  const ours = summarize(samples.get(active[0]!)!);
  const rows = active.map((r) => {
    const s = summarize(samples.get(r)!);
    return [
      r.name,
      String(s.runs),
      ms(s.median),
      ms(s.p90),
      ms(s.min),
      `${(s.median / ours.median).toFixed(2)}x`,
    ];
  });
  process.stdout.write(`\n${table(['tool', 'runs', 'median', 'p90', 'min', 'median vs ours'], rows)}\n\n`);
  for (const r of active) process.stdout.write(`  ${r.name}: ${r.note}\n`);
}

main()
  .then(() => {
    cleanup();
  })
  .catch((e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    try {
      cleanup();
    } catch (c) {
      process.stderr.write(`bench: cleanup failed: ${(c as Error).message}\n`);
    }
    process.exitCode = 1;
  });

import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
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
import { ms, type Summary, summarize, table } from '../lib/stats.js';
import { runCold } from './cold.js';
import { overheadBench } from './overhead.js';
import { cliRunner, debianTree, libraryRunner, loadNspawn, NSPAWN_CLI, startArgs } from './runners.js';

/**
 * Container start, /bin/true in a busybox root, start to exit: the
 * sd-nspawn CLI and library against systemd-nspawn and crun (seccomp off
 * and on), interleaved in one run; then, when tools/debian-tree/build.sh has
 * a finished tree, boot to poweroff with both nspawns.
 *
 *   npm run bench:start -- [--runs 50] [--boot-runs 3] [--install]
 *   npm run bench:start -- --overhead [--runs 40]   # the CLIs' start over node -e 0 (overhead.ts)
 *   npm run bench:start -- --cold   # what a start compiles for the first time, counted (cold.ts)
 *   npx tsx --conditions=sd-source tools/bench/start/bench.ts   # the library from src
 */

const USAGE = 'Usage: npm run bench:start -- [--runs N] [--boot-runs N] [--install] [--overhead | --cold]\n';
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '50' },
    'boot-runs': { type: 'string', default: '3' },
    install: { type: 'boolean', default: false },
    overhead: { type: 'boolean', default: false },
    cold: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const count = (name: string, v: string, min: number): number => {
  const n = Number(v);
  if (Number.isInteger(n) && n >= min) return n;
  process.stderr.write(`bench: --${name} must be an integer >= ${min}, not ${JSON.stringify(v)}\n${USAGE}`);
  process.exit(2);
};
const runs = count('runs', values.runs, 1);
const bootRuns = count('boot-runs', values['boot-runs'], 0);
if (process.getuid?.() !== 0) {
  process.stderr.write('bench: needs root (namespaces, crun, systemd-nspawn)\n');
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
const say = (s: string) => process.stdout.write(`bench: ${s}\n`);

/** Warm-up once each (dropping who cannot run here), then `n` rounds, rotating who goes first. */
async function measure(candidates: Runner[], n: number): Promise<Map<Runner, number[]>> {
  const active: Runner[] = [];
  for (const r of candidates) {
    try {
      await r.run();
      active.push(r);
    } catch (e) {
      say(`${r.name} fails here, skipping it: ${(e as Error).message}`);
    }
  }
  const samples = new Map<Runner, number[]>(active.map((r) => [r, []]));
  const failures = new Map<Runner, string[]>();
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < active.length; j++) {
      const r = active[(i + j) % active.length]!;
      try {
        samples.get(r)!.push(await r.run());
      } catch (e) {
        // A shared machine: one failed run is reported, not fatal.
        failures.set(r, [...(failures.get(r) ?? []), (e as Error).message]);
      }
    }
  }
  for (const [r, errs] of failures) say(`${r.name}: ${errs.length} of ${n} runs failed, first: ${errs[0]}`);
  return samples;
}

function report(samples: Map<Runner, number[]>, ours: Array<Runner | undefined>): Map<Runner, Summary> {
  const sums = new Map([...samples].map(([r, s]) => [r, summarize(s)] as const));
  const oursHere = ours.filter((r): r is Runner => !!r && sums.has(r));
  const header = ['tool', 'runs', 'median', 'p90', 'min', ...oursHere.map((r) => `${r.name} ÷ it`)];
  const rows = [...sums].map(([r, s]) => [
    r.name,
    String(s.runs),
    ms(s.median),
    ms(s.p90),
    ms(s.min),
    ...oursHere.map((o) => `${(sums.get(o)!.median / s.median).toFixed(2)}x`),
  ]);
  process.stdout.write(`\n${table(header, rows)}\n\n`);
  for (const r of sums.keys()) process.stdout.write(`  ${r.name}: ${r.note}\n`);
  return sums;
}

function target(what: string, ours: Summary | undefined, ref: Summary | undefined, factor: number): void {
  if (!ours || !ref) {
    process.stdout.write(`  ${what}: not measured (a contender is missing)\n`);
    return;
  }
  const limit = ref.median * factor;
  const verdict = ours.median <= limit ? 'MET' : `MISSED by ${ms(ours.median - limit)}`;
  process.stdout.write(`  ${what}: ${ms(ours.median)} vs limit ${ms(limit)} -> ${verdict}\n`);
}

async function startBench(): Promise<void> {
  const busybox = findBusybox();
  if (!busybox) throw new Error('busybox not found: apt-get install busybox-static (or pass --install)');
  root = makeBusyboxRoot(busybox, 'start');
  const { dir, rootfs } = root;
  say(`busybox root in ${rootfs}; kernel ${release()}; node ${process.version}; ${runs} runs each`);

  const cli = existsSync(NSPAWN_CLI) ? cliRunner(() => startArgs(rootfs)) : undefined;
  if (!cli) say(`${NSPAWN_CLI} is missing: run \`npm run build\` first; skipping the CLI`);
  let lib: Runner | undefined;
  try {
    const { mod, from } = await loadNspawn();
    lib = libraryRunner(mod, from, rootfs);
  } catch (e) {
    say(`skipping the library: ${(e as Error).message}`);
  }
  let nspawn: Runner | undefined;
  let crunOff: Runner | undefined;
  let crunOn: Runner | undefined;
  if (have('systemd-nspawn')) nspawn = nspawnRunner(rootfs);
  else say('systemd-nspawn is not installed, skipping it (--install gets it)');
  if (have('crun')) {
    if (!unifiedCgroups()) holder = await cgroup2Holder();
    const sys = (await import('@sd/sys').catch(() => ({}))) as {
      containerAllowedSyscalls?: (o: { capabilities: bigint }) => Set<string>;
      NSPAWN_DEFAULT_CAPABILITIES?: bigint;
    };
    const allowed =
      sys.containerAllowedSyscalls && sys.NSPAWN_DEFAULT_CAPABILITIES !== undefined
        ? [...sys.containerAllowedSyscalls({ capabilities: sys.NSPAWN_DEFAULT_CAPABILITIES })]
        : undefined;
    crunOff = crunRunner(dir, rootfs, { nsenterPid: holder?.pid, tag: 'crun', name: 'crun run, no seccomp' });
    if (allowed)
      crunOn = crunRunner(dir, rootfs, {
        nsenterPid: holder?.pid,
        tag: 'crun-seccomp',
        name: 'crun run, seccomp',
        allowedSyscalls: allowed,
      });
    else say('no containerAllowedSyscalls in @sd/sys: skipping crun with seccomp');
  } else say('crun is not installed, skipping it (--install gets it)');

  const all = [cli, lib, nspawn, crunOff, crunOn].filter((r): r is Runner => !!r);
  runners.push(...all);
  const sums = report(await measure(all, runs), [lib, cli]);
  const get = (r: Runner | undefined) => (r ? sums.get(r) : undefined);
  process.stdout.write('\ntargets (BENCHMARKS.md):\n');
  target('library at or below crun with seccomp', get(lib), get(crunOn), 1);
  target('CLI at or below half of systemd-nspawn', get(cli), get(nspawn), 0.5);
}

async function bootBench(): Promise<void> {
  if (bootRuns === 0) return;
  const { tree, why } = debianTree();
  if (!tree) {
    say(`boot: skipped, ${why}`);
    return;
  }
  if (!existsSync(NSPAWN_CLI)) {
    say(`boot: skipped, ${NSPAWN_CLI} is missing (npm run build)`);
    return;
  }
  if (!have('systemd-nspawn')) {
    say('boot: skipped, systemd-nspawn is not installed');
    return;
  }
  say(`boot: ${tree} (${why}), -b systemd.unit=poweroff.target, --volatile=state, ${bootRuns} runs each`);
  // /var on a tmpfs: the shared cached tree is not written to, and its lock is shared.
  const opts = ['-M', 'sd-bench-boot', '--volatile=state', '--console=pipe', '-b'];
  const cmd = ['systemd.unit=poweroff.target'];
  const timeout = 120_000;
  const boot = [
    cliRunner(() => ['-q', '-D', tree, ...opts, ...cmd], { name: 'sd-nspawn -b', timeout }),
    nspawnRunner(tree, cmd, opts, { name: 'systemd-nspawn -b', timeout }),
  ];
  const sums = report(await measure(boot, bootRuns), [boot[0]]);
  process.stdout.write('\ntarget:\n');
  target('boot no slower than systemd-nspawn', sums.get(boot[0]!), sums.get(boot[1]!), 1);
}

async function main(): Promise<void> {
  if (values.cold) {
    runCold();
    return;
  }
  if (values.overhead) {
    await overheadBench({
      runs,
      say,
      onCleanup: (f) => runners.push({ name: '', note: '', run: async () => 0, cleanup: f }),
    });
    return;
  }
  await startBench();
  await bootBench();
}

main()
  .then(() => {
    cleanup();
    // The library's poller keeps a handle open.
    process.exit(process.exitCode ?? 0);
  })
  .catch((e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    try {
      cleanup();
    } catch (c) {
      process.stderr.write(`bench: cleanup failed: ${(c as Error).message}\n`);
    }
    process.exit(1);
  });

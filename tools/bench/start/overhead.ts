import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type PrivateBus, startPrivateBus } from '../../dbus/private-bus.js';
import { type BenchRoot, findBusybox, makeBusyboxRoot, removeRoot } from '../lib/rootfs.js';
import { nodeStartNote } from '../lib/runners.js';
import { ms, quantile, table } from '../lib/stats.js';

/**
 * `npm run bench:start -- --overhead`: what each sd CLI costs over Node's own
 * start (`node -e 0`), wall and CPU time, measured in the same run,
 * interleaved (each round runs every contender once, the first one rotating),
 * medians over many runs. CPU time (user + system of the child, all its
 * threads) is the figure to read on a loaded machine; wall time is what a
 * user waits. The children are timed by rusage.py (wait4), so that the timer's
 * own event loop is not in the figures.
 *
 * The "SD_CODE_CACHE=0" rows are the same runs without @sd/basic's V8 code
 * cache, to show what the cache alone gives.
 *
 * The targets (issue 12): sd-nspawn -D TREE /bin/true ≤ 20 ms over node -e 0,
 * machinectl list (against sd-machined on a private bus: a real D-Bus round
 * trip) ≤ 15 ms.
 */

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const RUSAGE = fileURLToPath(new URL('./rusage.py', import.meta.url));

/** A bin's file as its package.json names it, so that a change of the build is followed. */
export function binPath(pkg: string, bin: string): string {
  const dir = join(repo, 'packages', pkg);
  const json = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  const rel = json.bin[bin];
  if (!rel) throw new Error(`packages/${pkg}/package.json has no bin ${bin}`);
  return join(dir, rel);
}

interface Sample {
  wall: number;
  cpu: number;
}

interface Timed {
  wall: number;
  cpu: number;
  status: number;
  stderr: string;
  error?: string;
}

/** One rusage.py server; requests go one at a time. */
class Timer {
  readonly #proc: ChildProcess;
  readonly #answers: Array<(t: Timed) => void> = [];
  constructor() {
    this.#proc = spawn('/usr/bin/python3', [RUSAGE], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.#proc.stdout! }).on('line', (l) => this.#answers.shift()?.(JSON.parse(l)));
  }
  run(argv: string[], env: NodeJS.ProcessEnv): Promise<Timed> {
    return new Promise((resolve) => {
      this.#answers.push(resolve);
      this.#proc.stdin!.write(`${JSON.stringify({ argv, env })}\n`);
    });
  }
  close(): void {
    this.#proc.stdin!.end();
  }
}

interface Contender {
  name: string;
  argv: string[];
  env?: NodeJS.ProcessEnv;
  /** Its overhead target in ms, if it has one. */
  target?: number;
}

export interface OverheadOptions {
  runs: number;
  say: (s: string) => void;
  /** Frees what was made, also on a signal. */
  onCleanup: (f: () => void) => void;
}

async function startMachined(bus: PrivateBus, root: string): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [binPath('machined', 'sd-machined'), '--root', root], {
    env: bus.env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr?.on('data', (d) => (log += d));
  const list = binPath('machined', 'machinectl');
  const timer = new Timer();
  try {
    for (let i = 0; i < 300; i++) {
      if (proc.exitCode !== null) throw new Error(`sd-machined exited with ${proc.exitCode}: ${log}`);
      const r = await timer.run([process.execPath, list, 'list'], bus.env);
      if (r.status === 0) return proc;
      await sleep(50);
    }
  } finally {
    timer.close();
  }
  proc.kill('SIGKILL');
  throw new Error(`machinectl list did not succeed within 15 s: ${log}`);
}

/**
 * SD_BENCH_NSPAWN_BEFORE=FILE: another build's sd-nspawn bin (an older
 * commit's dist, as tools/bench/start/build-before.sh makes it: with that
 * commit's own @sd packages) run side by side. Its --version runs first, so that its code cache is the one a
 * --version writes, as on a machine where that came first.
 */
function beforeRows(node: string, rootfs: string): Contender[] {
  const before = process.env.SD_BENCH_NSPAWN_BEFORE;
  if (!before) return [];
  return [
    { name: 'before: sd-nspawn --version', argv: [node, before, '--version'] },
    {
      name: 'before: sd-nspawn -D TREE /bin/true',
      argv: [node, before, '-q', '-D', rootfs, '--console=pipe', '/bin/true'],
    },
  ];
}

export async function overheadBench(o: OverheadOptions): Promise<void> {
  const node = process.execPath;
  const busybox = findBusybox();
  if (!busybox) throw new Error('busybox not found: apt-get install busybox-static');
  const nspawn = binPath('nspawn', 'sd-nspawn');
  const machinectl = binPath('machined', 'machinectl');
  for (const f of [nspawn, machinectl])
    if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first`);

  let root: BenchRoot | undefined;
  let bus: PrivateBus | undefined;
  let machined: ChildProcess | undefined;
  const stateRoot = mkdtempSync(join(tmpdir(), 'sd-bench-overhead-'));
  let done = false;
  const cleanup = () => {
    if (done) return;
    done = true;
    machined?.kill('SIGTERM');
    if (bus) {
      // startPrivateBus's own dbus-daemon, by its pid; its directory goes with it.
      try {
        process.kill(bus.pid, 'SIGTERM');
      } catch {}
      rmSync(bus.dir, { recursive: true, force: true });
    }
    if (root) removeRoot(root);
    rmSync(stateRoot, { recursive: true, force: true });
  };
  o.onCleanup(cleanup);
  try {
    root = makeBusyboxRoot(busybox, 'overhead');
    bus = await startPrivateBus();
    machined = await startMachined(bus, stateRoot);
    const rel = (p: string) => p.replace(repo, '');
    o.say(`node ${process.version}; ${o.runs} runs each; sd-machined on ${bus.address}`);
    const note = nodeStartNote();
    if (note) o.say(note);
    const contenders: Contender[] = [
      { name: 'node -e 0', argv: [node, '-e', '0'] },
      { name: 'sd-nspawn --version', argv: [node, nspawn, '--version'] },
      { name: 'sd-nspawn --help', argv: [node, nspawn, '--help'] },
      {
        name: 'sd-nspawn -D TREE /bin/true',
        argv: [node, nspawn, '-q', '-D', root.rootfs, '--console=pipe', '/bin/true'],
        target: 20,
      },
      {
        name: '  same, SD_CODE_CACHE=0',
        argv: [node, nspawn, '-q', '-D', root.rootfs, '--console=pipe', '/bin/true'],
        env: { ...process.env, SD_CODE_CACHE: '0' },
      },
      {
        name: '  same, registering with sd-machined',
        argv: [node, nspawn, '-q', '-D', root.rootfs, '--console=pipe', '/bin/true'],
        env: bus.env,
      },
      {
        name: "  same, koffi's own entry",
        argv: [node, nspawn, '-q', '-D', root.rootfs, '--console=pipe', '/bin/true'],
        env: { ...process.env, SD_KOFFI_ENTRY: '1' },
      },
      ...beforeRows(node, root.rootfs),
      { name: 'machinectl --help', argv: [node, machinectl, '--help'] },
      { name: 'machinectl list', argv: [node, machinectl, 'list'], env: bus.env, target: 15 },
      {
        name: '  same, SD_CODE_CACHE=0',
        argv: [node, machinectl, 'list'],
        env: { ...bus.env, SD_CODE_CACHE: '0' },
      },
    ];
    o.say(`bins: ${rel(nspawn)}, ${rel(machinectl)}`);
    const timer = new Timer();
    const samples = new Map<Contender, Sample[]>(contenders.map((c) => [c, []]));
    const fail = new Map<Contender, string>();
    const once = async (c: Contender) => {
      const r = await timer.run(c.argv, c.env ?? process.env);
      if (r.error || r.status !== 0) {
        fail.set(c, r.error ?? `exit ${r.status}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
        return;
      }
      samples.get(c)!.push({ wall: r.wall, cpu: r.cpu });
    };
    // Warm-up: the page cache and any code cache a bin writes on its first run.
    for (const c of contenders) for (let i = 0; i < 2; i++) await once(c);
    for (const c of contenders) samples.set(c, []);
    for (let i = 0; i < o.runs; i++)
      for (let j = 0; j < contenders.length; j++) await once(contenders[(i + j) % contenders.length]!);
    timer.close();
    for (const [c, e] of fail) o.say(`${c.name}: failed (${e})`);
    report(contenders, samples);
  } finally {
    cleanup();
  }
}

const median = (xs: number[]) =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );

function report(contenders: Contender[], samples: Map<Contender, Sample[]>): void {
  const base = samples.get(contenders[0]!)!;
  const bw = median(base.map((s) => s.wall));
  const bc = median(base.map((s) => s.cpu));
  const rows = contenders.map((c) => {
    const s = samples.get(c)!;
    const w = median(s.map((x) => x.wall));
    const cpu = median(s.map((x) => x.cpu));
    return [
      c.name,
      String(s.length),
      ms(w),
      ms(cpu),
      c === contenders[0] ? '' : `+${ms(w - bw)}`,
      c === contenders[0] ? '' : `+${ms(cpu - bc)}`,
      `${(w / bw).toFixed(2)}x`,
      `${(cpu / bc).toFixed(2)}x`,
      c.target === undefined ? '' : `≤ ${c.target} ms`,
    ];
  });
  const header = ['run', 'runs', 'wall', 'cpu', 'wall over', 'cpu over', 'wall ÷', 'cpu ÷', 'target'];
  process.stdout.write(`\n${table(header, rows)}\n\n`);
  process.stdout.write(
    'targets (overhead over node -e 0, medians; CPU is the figure on a loaded machine):\n',
  );
  for (const c of contenders) {
    if (c.target === undefined) continue;
    const s = samples.get(c)!;
    const w = median(s.map((x) => x.wall)) - bw;
    const cpu = median(s.map((x) => x.cpu)) - bc;
    const v = (x: number) => (x <= c.target! ? 'MET' : `MISSED by ${ms(x - c.target!)}`);
    process.stdout.write(`  ${c.name}: wall +${ms(w)} -> ${v(w)}; cpu +${ms(cpu)} -> ${v(cpu)}\n`);
  }
}

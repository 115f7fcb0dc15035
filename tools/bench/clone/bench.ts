import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ImagePool } from '../../../packages/machined/src/images/index.js';
import { aptInstall, have } from '../lib/runners.js';
import { ms, summarize, table } from '../lib/stats.js';

/**
 * Cloning a ~50k-file tree: ours (ImagePool.clone) against
 * `btrfs subvolume snapshot` and `cp -a --reflink=always` on a btrfs loop
 * file system, and against `cp -a` on an ext4 one; runs interleaved, the
 * clone removed (untimed, after a sync) between runs.
 *
 *   npm run bench:clone -- [--runs 5] [--files 50000] [--install]
 */

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    files: { type: 'string', default: '50000' },
    install: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write('Usage: npm run bench:clone -- [--runs N] [--files N] [--install]\n');
  process.exit(0);
}
const runs = Number(values.runs);
const files = Number(values.files);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(files) || files < 100) {
  process.stderr.write('bench: --runs must be ≥ 1 and --files ≥ 100\n');
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('bench: needs root (loop devices, mounts)\n');
  process.exit(1);
}
if (values.install) aptInstall(['btrfs-progs', 'e2fsprogs', 'coreutils']);
for (const tool of ['mkfs.btrfs', 'mkfs.ext4', 'btrfs', 'losetup']) {
  if (!have(tool)) {
    process.stderr.write(`bench: ${tool} is missing (apt-get install btrfs-progs e2fsprogs, or --install)\n`);
    process.exit(1);
  }
}

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
const runAsync = (cmd: string, args: string[]): Promise<void> =>
  new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: 'inherit' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))));
  });

const top = mkdtempSync(join(tmpdir(), 'sd-bench-clone-'));
const mounts: Array<{ dir: string; dev: string }> = [];
function cleanup(): void {
  for (const m of mounts.splice(0).reverse()) {
    try {
      sh('umount', [m.dir]);
    } catch {
      try {
        sh('umount', ['-l', m.dir]);
      } catch {}
    }
    try {
      sh('losetup', ['-d', m.dev]);
    } catch {}
  }
  rmSync(top, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });

function loopFs(kind: 'btrfs' | 'ext4', root: string, sizeMiB: number): string {
  const img = join(top, `${kind}.img`);
  sh('truncate', ['-s', `${sizeMiB}M`, img]);
  sh(kind === 'btrfs' ? 'mkfs.btrfs' : 'mkfs.ext4', kind === 'btrfs' ? ['-q', img] : ['-q', '-F', img]);
  const dev = sh('losetup', ['--show', '-f', img]).toString().trim();
  const dir = join(root, 'var/lib/machines');
  mkdirSync(dir, { recursive: true });
  sh('mount', [dev, dir]);
  mounts.push({ dir, dev });
  return dir;
}

/** ~`files` files in directories of 200: mostly 4 KiB, every 50th 64 KiB, a symlink per directory (≈ 211 MB at 50k). */
function fillTree(dir: string): void {
  let n = 0;
  for (let d = 0; n < files; d++) {
    const sub = join(dir, `d${d}`);
    mkdirSync(sub);
    for (let f = 0; f < 200 && n < files; f++, n++)
      writeFileSync(join(sub, `f${f}`), Buffer.alloc(f % 50 === 0 ? 65536 : 3000, n & 255));
  }
  sh('sync', []);
}

interface Contender {
  name: string;
  run(target: string): Promise<void>;
}

async function measure(label: string, contenders: Contender[], machines: string): Promise<void> {
  const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let i = 0; i < runs; i++) {
    for (const c of contenders) {
      const target = `clone-${i}`;
      sh('sync', []);
      const t0 = process.hrtime.bigint();
      await c.run(target);
      samples.get(c.name)!.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const pool = new ImagePool({ root: join(machines, '../../..') });
      await pool.remove(target);
      sh('sync', []);
    }
  }
  const base = summarize(samples.get(contenders[0]!.name)!).median;
  const rows = contenders.map((c) => {
    const s = summarize(samples.get(c.name)!);
    return [c.name, ms(s.median), ms(s.p90), ms(s.min), (s.median / base).toFixed(2)];
  });
  process.stdout.write(`\n${label} (${files} files, ${runs} runs)\n`);
  process.stdout.write(`${table(['method', 'median', 'p90', 'min', 'ratio'], rows)}\n`);
}

try {
  const bRoot = join(top, 'btrfs-root');
  const bMachines = loopFs('btrfs', bRoot, 2048);
  const bPool = new ImagePool({ root: bRoot });
  sh('btrfs', ['subvolume', 'create', join(bMachines, 'src')]);
  fillTree(join(bMachines, 'src'));
  mkdirSync(join(bMachines, 'plain'));
  fillTree(join(bMachines, 'plain'));
  await measure(
    'btrfs: clone a subvolume',
    [
      { name: 'ours (snapshot ioctl)', run: (t) => bPool.clone('src', t, false) },
      {
        name: 'btrfs subvolume snapshot',
        run: (t) =>
          runAsync('btrfs', ['-q', 'subvolume', 'snapshot', join(bMachines, 'src'), join(bMachines, t)]),
      },
      {
        name: 'cp -a --reflink=always',
        run: (t) => runAsync('cp', ['-a', '--reflink=always', join(bMachines, 'src'), join(bMachines, t)]),
      },
    ],
    bMachines,
  );
  await measure(
    'btrfs: clone a plain directory',
    [
      { name: 'ours (subvolume + reflinks)', run: (t) => bPool.clone('plain', t, false) },
      {
        name: 'cp -a --reflink=always',
        run: (t) => runAsync('cp', ['-a', '--reflink=always', join(bMachines, 'plain'), join(bMachines, t)]),
      },
    ],
    bMachines,
  );

  const eRoot = join(top, 'ext4-root');
  const eMachines = loopFs('ext4', eRoot, 2048);
  const ePool = new ImagePool({ root: eRoot });
  rmSync(join(eMachines, 'lost+found'), { recursive: true });
  mkdirSync(join(eMachines, 'src'));
  fillTree(join(eMachines, 'src'));
  await measure(
    'ext4: clone a directory',
    [
      { name: 'ours (copy_file_range)', run: (t) => ePool.clone('src', t, false) },
      { name: 'cp -a', run: (t) => runAsync('cp', ['-a', join(eMachines, 'src'), join(eMachines, t)]) },
    ],
    eMachines,
  );
} finally {
  cleanup();
}

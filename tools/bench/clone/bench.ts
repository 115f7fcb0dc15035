import { execFileSync, spawn } from 'node:child_process';
import {
  lchownSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { closeQuietly, copyHelpersCpuMs, lsetxattr, openRoot, removeTree, stopCopyHelpers } from '@sd/sys';
import { ImagePool } from '../../../packages/machined/src/images/index.js';
import {
  copyFromMachine,
  copyToMachine,
  machineCopyHelper,
} from '../../../packages/machined/src/transfer/copy.js';
import { aptInstall, have } from '../lib/runners.js';
import { ms, summarize, table } from '../lib/stats.js';

/**
 * Cloning and copying a ~50k-file tree: ours (ImagePool.clone, and the
 * machine copies CopyToMachine/CopyFromMachine run by sd-machined's worker)
 * against `btrfs subvolume snapshot` and `cp -a --reflink=always` on a
 * btrfs loop file system, and against `cp -a` on an ext4 one; runs
 * interleaved, the copy removed (untimed, after a sync) between runs.
 * "ours ÷ it" is ours (the first row's median) over each method's: above
 * 1.00, ours is slower. "cpu" is the CPU time (user + system) a run used —
 * steadier than wall time on a busy machine — ours with its copy helper
 * process's. "ours" copies with that second process (kept warm between
 * runs, as in sd-machined's worker between jobs: its start is not timed);
 * "ours, 1 process" without it.
 *
 *   npm run bench:clone -- [--runs 5] [--files 50000] [--install] [--only ext4,btrfs] [--dir /dev/shm]
 */

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    files: { type: 'string', default: '50000' },
    install: { type: 'boolean', default: false },
    only: { type: 'string', default: 'btrfs,ext4' },
    dir: { type: 'string', default: tmpdir() },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    'Usage: npm run bench:clone -- [--runs N] [--files N] [--install] [--only btrfs,ext4]\n',
  );
  process.exit(0);
}
const runs = Number(values.runs);
const only = new Set(values.only.split(','));
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
/** Runs a command; resolves to the CPU time (user + system, ms) it used, as /usr/bin/time reports it. */
const runAsync = (cmd: string, args: string[]): Promise<number> =>
  new Promise((resolve, reject) => {
    const out = join(top, 'time.out');
    const p = spawn('/usr/bin/time', ['-o', out, '-f', '%U %S', cmd, ...args], { stdio: 'inherit' });
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${cmd} exited ${code}`));
      const [u, sys] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
      resolve(((u ?? 0) + (sys ?? 0)) * 1000);
    });
  });

const top = mkdtempSync(join(values.dir, 'sd-bench-clone-'));
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

/**
 * A tree shaped like an OS image: `files` entries in directories of up to
 * 200 (two levels deep), most files small (100 B – 8 KiB), every 25th
 * 64 KiB, every 500th 1 MiB; a symlink every 10th entry, a hard link
 * every 100th, a user xattr on every 20th file, a few modes and owners.
 */
function fillTree(dir: string): void {
  let n = 0;
  let firstOfDir = '';
  for (let d = 0; n < files; d++) {
    const sub = join(dir, `d${d % 20}`, `s${d}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 200 && n < files; f++, n++) {
      const path = join(sub, `f${f}`);
      if (n % 10 === 9) {
        symlinkSync(n % 20 === 9 ? `f${f - 1}` : '/usr/lib/os-release', path);
        continue;
      }
      if (n % 100 === 50 && firstOfDir) {
        linkSync(firstOfDir, path);
        continue;
      }
      const size = n % 500 === 0 ? 1 << 20 : n % 25 === 0 ? 65536 : 100 + ((n * 7919) % 8092);
      writeFileSync(path, Buffer.alloc(size, n & 255), { mode: n % 7 === 0 ? 0o755 : 0o644 });
      if (n % 20 === 0) lsetxattr(path, 'user.bench', Buffer.from(`v${n}`));
      if (n % 13 === 0) lchownSync(path, 1000, 1000);
      if (f === 0) firstOfDir = path;
    }
  }
  sh('sync', []);
}

interface Contender {
  name: string;
  /** Resolves to the CPU time (ms) of a command it ran (a number); for work done here, anything else. */
  run(target: string): Promise<unknown>;
}

async function measure(
  label: string,
  contenders: Contender[],
  machines: string,
  remove?: (target: string) => void,
): Promise<void> {
  const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  const cpu = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let i = 0; i < runs; i++) {
    for (const c of contenders) {
      const target = `clone-${i}`;
      sh('sync', []);
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      const h0 = copyHelpersCpuMs();
      const used = await c.run(target);
      samples.get(c.name)!.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const c1 = process.cpuUsage(c0);
      const helper = Math.max(0, copyHelpersCpuMs() - h0);
      cpu.get(c.name)!.push(typeof used === 'number' ? used : (c1.user + c1.system) / 1000 + helper);
      if (remove) remove(target);
      else await new ImagePool({ root: join(machines, '../../..') }).remove(target);
      sh('sync', []);
    }
  }
  const base = summarize(samples.get(contenders[0]!.name)!).median;
  const cpuBase = summarize(cpu.get(contenders[0]!.name)!).median;
  const rows = contenders.map((c) => {
    const s = summarize(samples.get(c.name)!);
    const u = summarize(cpu.get(c.name)!).median;
    return [
      c.name,
      ms(s.median),
      ms(s.p90),
      ms(s.min),
      (base / s.median).toFixed(2),
      ms(u),
      (cpuBase / Math.max(u, 1)).toFixed(2),
    ];
  });
  process.stdout.write(`\n${label} (${files} files, ${runs} runs)\n`);
  process.stdout.write(
    `${table(['method', 'median', 'p90', 'min', 'ours ÷ it', 'cpu', 'cpu ours ÷ it'], rows)}\n`,
  );
}

/** What sd-machined's worker does for CopyToMachine / CopyFromMachine (identity uid map, run here). */
const machineCopy = async (
  direction: 'to' | 'from',
  rootDir: string,
  source: string,
  dest: string,
  parallel = true,
) => {
  const rootFd = openRoot(rootDir);
  try {
    const opts = {
      replace: false,
      mapId: (id: number) => id,
      idMap: { identity: true } as const,
      helper: parallel ? machineCopyHelper : undefined,
    };
    if (direction === 'to') await copyToMachine(rootFd, source, dest, opts);
    else await copyFromMachine(rootFd, source, dest, opts);
  } finally {
    closeQuietly(rootFd);
  }
};

/** Warms the copy helpers (started once, as sd-machined's worker starts its own before copying). */
async function warm(dir: string, pool: ImagePool, name: string): Promise<void> {
  await machineCopy('to', dir, join(dir, name), '/warm');
  removeTree(join(dir, 'warm'));
  await pool.clone(name, 'warm', false);
  await pool.remove('warm');
}

process.stdout.write(`load when starting: ${execFileSync('uptime').toString().trim()}\n`);
try {
  if (only.has('btrfs')) {
    const bRoot = join(top, 'btrfs-root');
    const bMachines = loopFs('btrfs', bRoot, 4096);
    const bPool = new ImagePool({ root: bRoot, parallelCopies: true });
    const bPool1 = new ImagePool({ root: bRoot });
    sh('btrfs', ['subvolume', 'create', join(bMachines, 'src')]);
    fillTree(join(bMachines, 'src'));
    mkdirSync(join(bMachines, 'plain'));
    fillTree(join(bMachines, 'plain'));
    await warm(bMachines, bPool, 'plain');
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
        { name: 'ours, 1 process', run: (t) => bPool1.clone('plain', t, false) },
        {
          name: 'cp -a --reflink=always',
          run: (t) =>
            runAsync('cp', ['-a', '--reflink=always', join(bMachines, 'plain'), join(bMachines, t)]),
        },
      ],
      bMachines,
    );
    // A machine whose root is the pool directory: copies in and out of it share extents.
    await measure(
      'btrfs: CopyToMachine of a directory (reflinks)',
      [
        {
          name: 'ours (machine copy)',
          run: async (t) => machineCopy('to', bMachines, join(bMachines, 'plain'), `/${t}`),
        },
        {
          name: 'ours, 1 process',
          run: async (t) => machineCopy('to', bMachines, join(bMachines, 'plain'), `/${t}`, false),
        },
        {
          name: 'cp -a --reflink=always',
          run: (t) =>
            runAsync('cp', ['-a', '--reflink=always', join(bMachines, 'plain'), join(bMachines, t)]),
        },
      ],
      bMachines,
      (t) => removeTree(join(bMachines, t)),
    );
  }

  if (only.has('ext4')) {
    const eRoot = join(top, 'ext4-root');
    const eMachines = loopFs('ext4', eRoot, 4096);
    const ePool = new ImagePool({ root: eRoot, parallelCopies: true });
    const ePool1 = new ImagePool({ root: eRoot });
    rmSync(join(eMachines, 'lost+found'), { recursive: true });
    mkdirSync(join(eMachines, 'src'));
    fillTree(join(eMachines, 'src'));
    await warm(eMachines, ePool, 'src');
    await measure(
      'ext4: clone a directory',
      [
        { name: 'ours (copy_file_range)', run: (t) => ePool.clone('src', t, false) },
        { name: 'ours, 1 process', run: (t) => ePool1.clone('src', t, false) },
        { name: 'cp -a', run: (t) => runAsync('cp', ['-a', join(eMachines, 'src'), join(eMachines, t)]) },
      ],
      eMachines,
    );
    // The machine's root is the pool directory; the host side is the same file system.
    await measure(
      'ext4: CopyToMachine of a directory',
      [
        {
          name: 'ours (machine copy)',
          run: async (t) => machineCopy('to', eMachines, join(eMachines, 'src'), `/${t}`),
        },
        {
          name: 'ours, 1 process',
          run: async (t) => machineCopy('to', eMachines, join(eMachines, 'src'), `/${t}`, false),
        },
        { name: 'cp -a', run: (t) => runAsync('cp', ['-a', join(eMachines, 'src'), join(eMachines, t)]) },
      ],
      eMachines,
      (t) => removeTree(join(eMachines, t)),
    );
    await measure(
      'ext4: CopyFromMachine of a directory',
      [
        {
          name: 'ours (machine copy)',
          run: async (t) => machineCopy('from', eMachines, '/src', join(eMachines, t)),
        },
        {
          name: 'ours, 1 process',
          run: async (t) => machineCopy('from', eMachines, '/src', join(eMachines, t), false),
        },
        { name: 'cp -a', run: (t) => runAsync('cp', ['-a', join(eMachines, 'src'), join(eMachines, t)]) },
      ],
      eMachines,
      (t) => removeTree(join(eMachines, t)),
    );
  }
  process.stdout.write(`\nload when done: ${execFileSync('uptime').toString().trim()}\n`);
} finally {
  stopCopyHelpers();
  cleanup();
}

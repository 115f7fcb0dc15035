import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findBusybox } from '../lib/rootfs.js';
import { external, have, nspawnRunner, type Runner } from '../lib/runners.js';
import { ms, summarize, table } from '../lib/stats.js';
import { NSPAWN_CLI } from '../start/runners.js';

/**
 * --ephemeral on btrfs: the start cost of `sd-nspawn -x` (a snapshot of the
 * tree, removed at exit) must not grow with the tree's size. Two subvolumes
 * on a loop-mounted btrfs image, a busybox root plus 1 000 and 50 000 files,
 * interleaved; systemd-nspawn -x on the same trees when installed.
 *
 *   npm run bench:ephemeral -- [--runs 20]
 */

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' } } });
const runs = Number(values.runs);
const busybox = findBusybox();
if (!busybox) throw new Error('busybox is not installed (apt-get install busybox-static)');

const dir = mkdtempSync(join(tmpdir(), 'sd-bench-ephemeral-'));
const mnt = join(dir, 'mnt');
let mounted = false;

function makeTree(name: string, files: number): string {
  const tree = join(mnt, name);
  execFileSync('btrfs', ['-q', 'subvolume', 'create', tree]);
  for (const d of ['bin', 'etc', 'usr', 'var', 'root', 'data']) mkdirSync(join(tree, d));
  execFileSync('cp', [busybox!, join(tree, 'bin/busybox')]);
  for (const a of ['sh', 'true']) execFileSync('ln', ['-s', 'busybox', join(tree, 'bin', a)]);
  writeFileSync(join(tree, 'etc/os-release'), 'ID=bench\n');
  for (let i = 0; i < files; i++) {
    const sub = join(tree, 'data', String(i % 100));
    if (i < 100) mkdirSync(sub);
    writeFileSync(join(sub, `f${i}`), `file ${i}\n`);
  }
  return tree;
}

function cleanup(): void {
  if (mounted) {
    try {
      execFileSync('umount', [mnt]);
    } catch {}
    mounted = false;
  }
  rmSync(dir, { recursive: true, force: true });
}
process.once('SIGINT', () => {
  cleanup();
  process.exit(130);
});

try {
  mkdirSync(mnt);
  execFileSync('truncate', ['-s', '2G', join(dir, 'img')]);
  execFileSync('mkfs.btrfs', ['-q', join(dir, 'img')]);
  execFileSync('mount', ['-o', 'loop', join(dir, 'img'), mnt]);
  mounted = true;
  const small = makeTree('small', 1_000);
  const large = makeTree('large', 50_000);

  const ours = (tree: string, label: string): Runner =>
    external(`sd-nspawn -x, ${label}`, 'snapshot, run /bin/true, delete', process.execPath, () => [
      NSPAWN_CLI,
      '-q',
      '-x',
      '-D',
      tree,
      '--console=pipe',
      '/bin/true',
    ]);
  const theirs = (tree: string, label: string): Runner =>
    nspawnRunner(tree, ['/bin/true'], ['-x'], { name: `systemd-nspawn -x, ${label}` });
  const runners = [ours(small, '1k files'), ours(large, '50k files')];
  if (have('systemd-nspawn')) runners.push(theirs(small, '1k files'), theirs(large, '50k files'));
  else process.stdout.write('systemd-nspawn is not installed: skipped (apt-get install systemd-container)\n');

  const samples = runners.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) for (const [j, r] of runners.entries()) samples[j]!.push(await r.run());
  const rows = runners.map((r, j) => {
    const s = summarize(samples[j]!);
    return [r.name, String(runs), ms(s.median), ms(s.p90)];
  });
  process.stdout.write(`${table(['contender', 'runs', 'median', 'p90'], rows)}\n`);
  const med = (j: number) => summarize(samples[j]!).median;
  process.stdout.write(
    `sd-nspawn -x: 50k files / 1k files = ${(med(1) / med(0)).toFixed(2)}x (target: ~1.0x, size-independent)\n`,
  );
  if (runners.length === 4)
    process.stdout.write(
      `systemd-nspawn -x: 50k / 1k = ${(med(3) / med(2)).toFixed(2)}x; ours vs systemd-nspawn (50k): ${(med(1) / med(3)).toFixed(2)}x\n`,
    );
} finally {
  cleanup();
}

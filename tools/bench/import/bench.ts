import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { aptInstall, have } from '../lib/runners.js';
import { summarize, table } from '../lib/stats.js';

/**
 * Importing a tree from .tar, .tar.xz, .tar.gz, .tar.bz2 and .tar.zst into
 * tmpfs: ours (importTar in a fresh process, as sd-importd runs it) against
 * systemd-import and `decompress | tar -x`, interleaved in the same run;
 * medians and ratios. The archives are made once from the tree with GNU
 * tar (xattrs, numeric owners) and the compressors' CLIs (xz -T2).
 *
 *   npm run bench:import -- [--runs 3] [--tree /var/cache/sd-test/debian-bookworm] [--install]
 */

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    tree: { type: 'string', default: '/var/cache/sd-test/debian-bookworm' },
    formats: { type: 'string', default: 'tar,xz,gz,bz2,zst' },
    install: { type: 'boolean', default: false },
    warm: { type: 'boolean', default: false },
    archives: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    'Usage: npm run bench:import -- [--runs N] [--tree DIR] [--formats tar,xz,gz,bz2,zst] [--archives DIR] [--install] [--warm]\n' +
      '  --warm: also a second import in the same process (as a running sd-importd does after its first)\n' +
      '  --archives DIR: keep the archives (image.tar, image.tar.xz, …) in DIR and reuse them next time\n',
  );
  process.exit(0);
}
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write('bench: --runs must be ≥ 1\n');
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('bench: needs root (tmpfs mount, owners)\n');
  process.exit(1);
}
if (values.install) aptInstall(['systemd-container', 'tar', 'xz-utils', 'zstd', 'bzip2', 'gzip']);
if (!existsSync(values.tree)) {
  process.stderr.write(`bench: no tree at ${values.tree} (tools/debian-tree/build.sh makes one)\n`);
  process.exit(1);
}
const SYSTEMD_IMPORT = '/usr/lib/systemd/systemd-import';
const haveSystemd = existsSync(SYSTEMD_IMPORT);
if (!haveSystemd)
  process.stderr.write(`bench: ${SYSTEMD_IMPORT} is missing (apt-get install systemd-container): skipped\n`);

interface Format {
  key: string;
  suffix: string;
  make: string;
  decompress: string | undefined;
}
const FORMATS: Format[] = [
  { key: 'tar', suffix: '.tar', make: '', decompress: undefined },
  { key: 'xz', suffix: '.tar.xz', make: 'xz -T2 -6 -c', decompress: 'xz -dc -T2' },
  { key: 'gz', suffix: '.tar.gz', make: 'gzip -6 -c', decompress: 'gzip -dc' },
  { key: 'bz2', suffix: '.tar.bz2', make: 'bzip2 -9 -c', decompress: 'bzip2 -dc' },
  { key: 'zst', suffix: '.tar.zst', make: 'zstd -T2 -3 -c', decompress: 'zstd -dc' },
].filter((f) => values.formats.split(',').includes(f.key));
if (!existsSync('/usr/bin/time')) {
  process.stderr.write('bench: /usr/bin/time is missing (apt-get install time)\n');
  process.exit(1);
}
for (const f of FORMATS) {
  const tool = f.make.split(' ')[0];
  if (tool && !have(tool)) {
    process.stderr.write(`bench: ${tool} is missing (--install)\n`);
    process.exit(1);
  }
}

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const ONE = join(repo, 'tools/bench/import/one.ts');
const work = mkdtempSync('/tmp/sd-bench-import-');
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6g', 'sd-bench-import', work]);
const cleanup = () => {
  try {
    execFileSync('umount', [work]);
  } catch {}
  rmSync(work, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

// GNU time: user+system CPU of a command and its children.
const TIME = '/usr/bin/time';
const cpuFile = join(work, 'cpu');
const cpuOf = (): number => {
  const [u, s] = readFileSync(cpuFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number) as [
    number,
    number,
  ];
  return (u + s) * 1000;
};
const sh = (script: string) =>
  execFileSync('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
const timed = (fn: () => void): number => {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
};

try {
  const archives = values.archives ?? join(work, 'archives');
  const pool = join(work, 'pool');
  const plain = join(work, 'plain');
  mkdirSync(archives, { recursive: true });
  mkdirSync(pool);
  mkdirSync(plain);
  const base = join(archives, 'image');
  if (!existsSync(`${base}.tar`)) {
    process.stderr.write(`bench: making archives of ${values.tree}…\n`);
    sh(`tar --xattrs --xattrs-include='*' --numeric-owner -C '${values.tree}' -cf '${base}.tar.part' .`);
    sh(`mv '${base}.tar.part' '${base}.tar'`);
  }
  for (const f of FORMATS)
    if (f.make && !existsSync(`${base}${f.suffix}`)) {
      sh(`${f.make} '${base}.tar' > '${base}${f.suffix}.part'`);
      sh(`mv '${base}${f.suffix}.part' '${base}${f.suffix}'`);
    }
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const f of FORMATS) {
    const file = `${base}${f.suffix}`;
    const ours: number[] = [];
    const warm: number[] = [];
    const oursWall: number[] = [];
    const rss: number[] = [];
    const sysd: number[] = [];
    const pipe: number[] = [];
    const cpu = {
      ours: [] as number[],
      oursMain: [] as number[],
      sysd: [] as number[],
      pipe: [] as number[],
    };
    let sysdFailed = '';
    for (let i = 0; i < runs; i++) {
      // Ours.
      const t0 = process.hrtime.bigint();
      const r = spawnSync(
        process.execPath,
        ['--conditions=sd-source', '--import', 'tsx', ONE, file, pool, 'ours'],
        {
          encoding: 'utf8',
          env: { ...process.env, SD_BENCH_WARM: values.warm ? '1' : '0' },
        },
      );
      // With --warm the process also does the second import: its wall time is no CLI's.
      if (!values.warm) oursWall.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (r.status !== 0) throw new Error(`ours failed on ${f.suffix}: ${r.stderr}`);
      const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
        ms: number;
        cpuMs: number;
        mainMs: number;
        maxRssKb: number;
        warmMs?: number;
      };
      if (res.warmMs !== undefined) warm.push(res.warmMs);
      ours.push(res.ms);
      cpu.ours.push(res.cpuMs);
      cpu.oursMain.push(res.mainMs);
      rss.push(res.maxRssKb / 1024);
      sh(`rm -rf '${pool}/ours'`);
      // systemd-import.
      if (haveSystemd && !sysdFailed) {
        let ok = true;
        const ms = timed(() => {
          const s = spawnSync(
            TIME,
            [
              '-f',
              '%U %S',
              '-o',
              cpuFile,
              SYSTEMD_IMPORT,
              'tar',
              `--image-root=${pool}`,
              '--btrfs-subvol=no',
              file,
              'sysd',
            ],
            {
              encoding: 'utf8',
            },
          );
          if (s.status !== 0) {
            ok = false;
            sysdFailed = (s.stderr || '').trim().split('\n').pop() ?? 'failed';
          }
        });
        if (ok) {
          sysd.push(ms);
          cpu.sysd.push(cpuOf());
        }
        sh(`rm -rf '${pool}/sysd' '${pool}'/.#*`);
      }
      // decompress | tar -x
      mkdirSync(`${plain}/t`);
      const extract = `tar -x --xattrs --xattrs-include='*' --numeric-owner -p -C '${plain}/t'`;
      const script = f.decompress ? `${f.decompress} '${file}' | ${extract}` : `${extract} -f '${file}'`;
      pipe.push(
        timed(() => sh(`${TIME} -f '%U %S' -o '${cpuFile}' sh -c "${script.replaceAll('"', '\\"')}"`)),
      );
      cpu.pipe.push(cpuOf());
      sh(`rm -rf '${plain}/t'`);
    }
    const o = summarize(ours).median;
    const s = sysd.length ? summarize(sysd).median : Number.NaN;
    const p = summarize(pipe).median;
    const sec = (v: number) => (Number.isFinite(v) ? `${(v / 1000).toFixed(2)} s` : '-');
    rows.push([
      f.suffix,
      `${(statSync(file).size / 1e6).toFixed(0)} MB`,
      sec(o),
      sec(summarize(oursWall).median),
      `${Math.max(...rss).toFixed(0)} MB`,
      sysdFailed ? 'fails' : sec(s),
      Number.isFinite(s) ? `${(o / s).toFixed(2)}×` : '-',
      sec(p),
      `${(o / p).toFixed(2)}×`,
      `${sec(summarize(cpu.ours).median)} (${sec(summarize(cpu.oursMain).median)}) / ${cpu.sysd.length ? sec(summarize(cpu.sysd).median) : '-'} / ${sec(summarize(cpu.pipe).median)}`,
    ]);
    if (sysdFailed) notes.push(`systemd-import on ${f.suffix}: ${sysdFailed}`);
    if (warm.length) {
      const w = summarize(warm).median;
      notes.push(
        `${f.suffix} warm (second import in the same process): ${sec(w)}` +
          (Number.isFinite(s) ? `, ${(w / s).toFixed(2)}× systemd-import` : ''),
      );
    }
  }
  process.stdout.write(
    `\nImport of ${values.tree} into tmpfs, median of ${runs} interleaved runs\n\n${table(
      [
        'input',
        'size',
        'ours',
        'ours+node',
        'ours RSS',
        'systemd-import',
        'ours/sysd',
        'decompress|tar',
        'ours/pipe',
        'CPU ours (main thread)/sysd/pipe',
      ],
      rows,
    )}\n`,
  );
  for (const n of notes) process.stdout.write(`note: ${n}\n`);
  process.stdout.write(
    "ours: importTar() in a fresh process, timed inside it; ours+node adds Node's start, as a CLI would.\n" +
      'CPU: user+system time of all threads and children (steadier than wall time on a loaded machine);\n' +
      "  ours' main thread alone in brackets: with a core free for the rest, it bounds ours' wall time.\n" +
      `load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`,
  );
} finally {
  cleanup();
}

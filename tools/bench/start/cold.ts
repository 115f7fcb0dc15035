import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { findBusybox, makeBusyboxRoot, removeRoot } from '../lib/rootfs.js';
import { table } from '../lib/stats.js';
import { binPath } from './overhead.js';

/**
 * `npm run bench:start -- --cold`: what a CLI start pays for code that runs
 * for the first time, counted rather than timed, so that a change shows on a
 * machine too noisy for a 1 ms difference in wall time. For `node -e 0`,
 * `sd-nspawn --version` and `sd-nspawn -D ROOT /bin/true` (and the same for
 * SD_BENCH_NSPAWN_BEFORE's build): the functions V8 compiled lazily (Node's
 * own and the bundle's: the code cache holds the bundle's), the regular
 * expressions it compiled, and the scavenges. Each is run twice with V8's
 * logging on and the second run is counted: the first writes the code cache
 * those flags need.
 */

interface Counts {
  nodeFunctions: number;
  ownFunctions: number;
  compileMs: number;
  regexps: number;
  scavenges: number;
}

function count(argv: string[]): Counts {
  const dir = mkdtempSync(join(tmpdir(), 'sd-bench-cold-'));
  try {
    // --no-regexp-tier-up: every regexp compiles to machine code at its first use, so the log names
    // each one (a regexp run once is otherwise interpreted, and not logged).
    const flags = [
      '--log-function-events',
      '--log-code',
      '--no-regexp-tier-up',
      '--trace-gc',
      `--logfile=${join(dir, 'v8.log')}`,
    ];
    let stdout = '';
    for (let i = 0; i < 2; i++) {
      for (const f of readdirSync(dir)) rmSync(join(dir, f));
      const r = spawnSync(process.execPath, [...flags, ...argv], { cwd: dir, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${argv.join(' ')} exited with ${r.status}: ${r.stderr}`);
      stdout = r.stdout;
    }
    // Node names the log isolate-ADDRESS-PID-v8.log, in the working directory.
    const log = readdirSync(dir).find((f) => f.endsWith('v8.log'));
    if (!log) throw new Error('V8 wrote no log');
    const names = new Map<string, string>();
    const c: Counts = { nodeFunctions: 0, ownFunctions: 0, compileMs: 0, regexps: 0, scavenges: 0 };
    for (const line of readFileSync(join(dir, log), 'utf8').split('\n')) {
      const f = line.split(',');
      if (f[0] === 'script-details') names.set(f[1] ?? '', f[2] ?? '');
      else if (f[0] === 'code-creation' && f[1] === 'RegExp') c.regexps++;
      else if (f[0] === 'function' && (f[1] === 'interpreter' || f[1] === 'parse-function')) {
        c.compileMs += Number(f[5]) || 0;
        if (f[1] !== 'interpreter') continue;
        if ((names.get(f[2] ?? '') ?? '').startsWith('node:')) c.nodeFunctions++;
        else c.ownFunctions++;
      }
    }
    c.scavenges = (stdout.match(/Scavenge/g) ?? []).length;
    return c;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function runCold(): void {
  const busybox = findBusybox();
  if (!busybox) throw new Error('bench --cold: needs busybox-static (tools/setup installs it)');
  const root = makeBusyboxRoot(busybox, 'cold');
  try {
    const bins: Array<[string, string]> = [['', binPath('nspawn', 'sd-nspawn')]];
    const before = process.env.SD_BENCH_NSPAWN_BEFORE;
    if (before) bins.push(['before: ', resolve(before)]);
    const rows: Array<[string, Counts]> = [['node -e 0', count(['-e', '0'])]];
    for (const [label, bin] of bins) {
      rows.push([`${label}sd-nspawn --version`, count([bin, '--version'])]);
      rows.push([
        `${label}sd-nspawn -D ROOT /bin/true`,
        count([bin, '-q', '-D', root.rootfs, '--console=pipe', '/bin/true']),
      ]);
    }
    process.stdout.write(
      `${table(
        [
          'run',
          "Node's functions compiled",
          "the bundle's",
          'compile ms (logged)',
          'regexps compiled',
          'scavenges',
        ],
        rows.map(([name, c]) => [
          name,
          String(c.nodeFunctions),
          String(c.ownFunctions),
          c.compileMs.toFixed(2),
          String(c.regexps),
          String(c.scavenges),
        ]),
      )}\n`,
    );
    process.stdout.write(
      'Counted from V8\'s own log (--log-function-events, --log-code --no-regexp-tier-up, --trace-gc); "compile ms" is V8\'s timing of them with logging on, for comparison only.\n',
    );
  } finally {
    removeRoot(root);
  }
}

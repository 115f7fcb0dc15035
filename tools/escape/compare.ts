/**
 * Issue 14's attack list (test-e2e/lib/attacks.sh) against sd-nspawn and
 * systemd-nspawn, default flags and -U, from the same run: prints the
 * side-by-side table (markdown) for the closing note, and each run's
 * details with --verbose. As root, with the Debian test tree built.
 *
 *   npx tsx tools/escape/compare.ts [--verbose]
 *
 * All get the same binds and environment, and --volatile=state (the tree is
 * shared with other test runs), except systemd-nspawn -U: its -U fails with
 * --volatile=state here, and its auto ownership would chown the tree, so it
 * runs with --private-users-ownership=map (the idmapped mount sd-nspawn
 * makes by default). systemd-nspawn runs with --register=no --keep-unit, as
 * the issue names it.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type AttackRun, formatAttempts, runAttackList } from '../../test-e2e/lib/attacks.js';
import { ReferenceCgroup } from '../bench/lib/reference-cgroup.js';

const verbose = process.argv.includes('--verbose');
const tree = execFileSync(fileURLToPath(new URL('../debian-tree/build.sh', import.meta.url)), {
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
}).trim();
const SD = fileURLToPath(new URL('../../packages/nspawn/dist/sd-nspawn.cjs', import.meta.url));

const common = (dir: string, env: Record<string, string>, volatile = true) => [
  '--pipe',
  '-q',
  '-D',
  tree,
  ...(volatile ? ['--volatile=state'] : []),
  `--bind-ro=${dir}:/mnt`,
  ...Object.entries(env).map(([k, v]) => `--setenv=${k}=${v}`),
];

const configs: Array<{ label: string; cmd: (dir: string, env: Record<string, string>) => string[] }> = [
  {
    label: 'sd default',
    cmd: (d, e) => [
      process.execPath,
      SD,
      ...common(d, e),
      '--register=no',
      '-M',
      'secure-cmp-sd',
      '/bin/sh',
      '/mnt/attacks.sh',
    ],
  },
  {
    label: 'sd -U',
    cmd: (d, e) => [
      process.execPath,
      SD,
      ...common(d, e),
      '--register=no',
      '-M',
      'secure-cmp-sdu',
      '-U',
      '/bin/sh',
      '/mnt/attacks.sh',
    ],
  },
  {
    label: 'systemd-nspawn default',
    cmd: (d, e) => [
      'systemd-nspawn',
      '--register=no',
      '--keep-unit',
      ...common(d, e),
      '-M',
      'secure-cmp-sn',
      '/bin/sh',
      '/mnt/attacks.sh',
    ],
  },
  {
    label: 'systemd-nspawn -U',
    // Its -U with --volatile=state fails here ("Failed to set up ID mapped mounts: EBUSY"), and
    // without it -U's auto ownership would chown the shared tree: the idmapped mount, asked for.
    cmd: (d, e) => [
      'systemd-nspawn',
      '--register=no',
      '--keep-unit',
      ...common(d, e, false),
      '-M',
      'secure-cmp-snu',
      '-U',
      '--private-users-ownership=map',
      '/bin/sh',
      '/mnt/attacks.sh',
    ],
  },
];

const runs: Array<{ label: string; run: AttackRun }> = [];
for (const c of configs) {
  // The reference in a cgroup of its own, removed after it (ReferenceCgroup).
  const cg = new ReferenceCgroup('escape');
  const run = runAttackList((d, e) => {
    const [cmd, ...args] = c.cmd(d, e) as [string, ...string[]];
    return cmd === 'systemd-nspawn' ? cg.argv(cmd, args).flat() : [cmd, ...args];
  });
  await cg.remove();
  runs.push({ label: c.label, run });
  if (verbose)
    console.log(`## ${c.label} (exit ${run.code})\n${formatAttempts(run.attempts)}\n${run.stderr.trim()}\n`);
}

const names = [...new Set(runs.flatMap((r) => r.run.attempts.map((a) => a.name)))];
const cell = (run: AttackRun, name: string) => {
  const a = run.attempts.find((x) => x.name === name);
  if (!a) return run.complete ? '–' : 'not run';
  return a.result === 'SUCCEEDED' ? '**succeeded**' : a.result;
};
console.log(`| attack | ${runs.map((r) => r.label).join(' | ')} |`);
console.log(`|---|${runs.map(() => '---').join('|')}|`);
for (const n of names) console.log(`| ${n} | ${runs.map((r) => cell(r.run, n)).join(' | ')} |`);
const count = (run: AttackRun) => run.attempts.filter((a) => a.result === 'SUCCEEDED').length;
console.log(
  `| **succeeded** | ${runs.map((r) => `**${count(r.run)}** of ${r.run.attempts.filter((a) => a.result !== 'absent').length}`).join(' | ')} |`,
);
console.log(
  `| host tunables changed | ${runs.map((r) => (r.run.hostChanges.length ? r.run.hostChanges.join(', ') : 'none')).join(' | ')} |`,
);

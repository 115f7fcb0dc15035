import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { makeBusyboxTree } from '../test/busybox-tree.js';
import { diffSnapshots, snapshot } from '../test/leak-check.js';

/**
 * The long mode of the security and robustness issues, outside CI:
 * start/stop cycles of busybox containers with -U and registration with a
 * running sd-machined (on a private bus), N at a time; then kill -9 of
 * sd-nspawn mid-start and mid-run and of sd-machined, each followed by a
 * start that must work. Prints the daemon's RSS and fd count along the way
 * and fails (exit 1) when anything is left behind: mounts, loop devices,
 * cgroups, links, netns, nft tables, state files, daemon fds.
 *
 *   npx tsx tools/soak/soak.ts [--cycles 1000] [--parallel 20] [--network]
 *   (--network runs the whole soak in a network namespace of its own)
 */
const repo = join(import.meta.dirname, '..', '..');
const NSPAWN = join(repo, 'packages/nspawn/dist/sd-nspawn.cjs');
const MACHINED = join(repo, 'packages/machined/dist/machined.js');

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '1000' },
    parallel: { type: 'string', default: '20' },
    network: { type: 'boolean', default: false },
  },
});
// With --network the links, addresses and nft tables are made in a network
// namespace of the soak's own, never in the host's: run again inside one.
if (values.network && process.env.SD_SOAK_NETNS !== '1') {
  const r = spawnSync(
    'unshare',
    [
      '-n',
      'sh',
      '-c',
      'ip link set lo up && exec "$@"',
      'sh',
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    { stdio: 'inherit', env: { ...process.env, SD_SOAK_NETNS: '1' } },
  );
  process.exit(r.status ?? 1);
}
const cycles = Number(values.cycles);
const parallel = Number(values.parallel);
const say = (m: string) => process.stdout.write(`${m}\n`);

for (const f of [NSPAWN, MACHINED]) if (!existsSync(f)) throw new Error(`${f} is missing: npm run build`);

const before = snapshot();
const tree = makeBusyboxTree('sd-soak-');
chmodSync(tree.dir, 0o755);
const root = mkdtempSync(join(tmpdir(), 'sd-soak-root-'));
const busEnv = Object.fromEntries(
  execFileSync(join(repo, 'tools/dbus/private-bus.sh'), ['start'], { encoding: 'utf8' })
    .trim()
    .replace(/^export /, '')
    .split(' ')
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const env = { ...process.env, ...busEnv };

let daemon: ChildProcess | undefined;
async function startDaemon(): Promise<ChildProcess> {
  const d = spawn(process.execPath, [MACHINED, '--root', root], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    d.stderr?.on('data', (b) => {
      err += b;
      if (err.includes('Serving org.freedesktop.machine1')) resolve();
    });
    d.once('exit', (c) => reject(new Error(`sd-machined exited (${c}): ${err}`)));
  });
  return d;
}

function daemonFigures(d: ChildProcess): { rssMb: number; fds: number } {
  const status = readFileSync(`/proc/${d.pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  return { rssMb: Math.round(rss * 10) / 10, fds: readdirSync(`/proc/${d.pid}/fd`).length };
}

/** Runs sd-nspawn; resolves to its exit status and stderr. */
function nspawn(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    // --read-only: many containers of one tree at once (a writable tree is locked to one).
    const p = spawn(process.execPath, [NSPAWN, '-q', '--pipe', '--read-only', ...args], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    p.stderr?.on('data', (b) => {
      stderr += b;
    });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, stderr: stderr.trim() });
    });
  });
}

const net = values.network ? ['-n'] : [];
const failures: string[] = [];
try {
  daemon = await startDaemon();
  const start = daemonFigures(daemon);
  say(`sd-machined idle: ${start.rssMb} MB RSS, ${start.fds} fds`);
  const t0 = performance.now();
  let done = 0;
  const worker = async (slot: number) => {
    while (done < cycles) {
      const i = done++;
      const r = await nspawn(['-U', ...net, '-M', `soak-${slot}`, '-D', tree.dir, '/bin/true']);
      if (r.code !== 0) failures.push(`cycle ${i} (soak-${slot}): exit ${r.code}: ${r.stderr}`);
      if ((i + 1) % 100 === 0 && daemon) {
        const f = daemonFigures(daemon);
        say(`${i + 1} cycles: ${f.rssMb} MB RSS, ${f.fds} fds`);
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, (_, s) => worker(s)));
  const secs = (performance.now() - t0) / 1000;
  say(`${cycles} cycles, ${parallel} at a time: ${secs.toFixed(1)} s, ${failures.length} failed`);

  // kill -9 of sd-nspawn mid-start and mid-run; the next start of the same name must work.
  for (const [when, ms] of [
    ['mid-start', 30],
    ['mid-run', 1500],
  ] as const) {
    const p = spawn(
      process.execPath,
      [NSPAWN, '-q', '--pipe', '--read-only', '-U', ...net, '-M', 'soak-kill', '-D', tree.dir, 'sleep', '30'],
      {
        env,
        stdio: 'ignore',
      },
    );
    await sleep(ms);
    p.kill('SIGKILL');
    await new Promise((r) => p.once('exit', r));
    const r = await nspawn(['-U', ...net, '-M', 'soak-kill', '-D', tree.dir, '/bin/true']);
    say(`kill -9 of sd-nspawn ${when}: next start exit ${r.code} ${r.stderr}`);
    if (r.code !== 0) failures.push(`start after kill -9 ${when}: exit ${r.code}: ${r.stderr}`);
  }

  // kill -9 of sd-machined with a machine running, a restart, and the machine is back.
  const running = spawn(
    process.execPath,
    [NSPAWN, '-q', '--pipe', '--read-only', '-U', '-M', 'soak-survivor', '-D', tree.dir, 'sleep', '30'],
    {
      env,
      stdio: 'ignore',
    },
  );
  await sleep(1500);
  daemon.kill('SIGKILL');
  await new Promise((r) => daemon?.once('exit', r));
  daemon = await startDaemon();
  const list = execFileSync(
    'busctl',
    [
      `--address=${env.DBUS_SYSTEM_BUS_ADDRESS}`,
      'call',
      'org.freedesktop.machine1',
      '/org/freedesktop/machine1',
      'org.freedesktop.machine1.Manager',
      'ListMachines',
    ],
    { encoding: 'utf8' },
  );
  const back = list.includes('soak-survivor');
  say(`kill -9 of sd-machined: the running machine is ${back ? '' : 'NOT '}back after the restart`);
  if (!back) failures.push('sd-machined lost a running machine over kill -9');
  running.kill('SIGTERM');
  await new Promise((r) => running.once('exit', r));
  const after = daemonFigures(daemon);
  say(`sd-machined after the restart and the last machine gone: ${after.rssMb} MB RSS, ${after.fds} fds`);
} finally {
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon?.once('exit', r));
  }
  execFileSync(join(repo, 'tools/dbus/private-bus.sh'), [
    'stop',
    busEnv.SD_PRIVATE_BUS_PID ?? '',
    busEnv.SD_PRIVATE_BUS_DIR ?? '',
  ]);
  const state = join(root, 'run/systemd/machines');
  const leftState = existsSync(state) ? readdirSync(state) : [];
  if (leftState.length) failures.push(`state files left: ${leftState.join(', ')}`);
  rmSync(root, { recursive: true, force: true });
  tree.remove();
}
await sleep(500);
const leaks = diffSnapshots(before, snapshot());
for (const l of leaks) failures.push(`left behind: ${l}`);
say(failures.length ? `FAILED:\n  ${failures.join('\n  ')}` : 'soak: nothing failed, nothing left behind');
process.exit(failures.length ? 1 : 0);

import { type ChildProcess, spawn as spawnProcess, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exitCodeOf, MS, SpawnProgram, spawn } from '../../../packages/sys/src/index.js';
import { ALL_NAMESPACES, pivotInto, privatizeMounts, writeIdMaps } from '../../lib/container.js';

/**
 * The contenders: each runs /bin/true in the busybox root once and returns
 * the wall time in milliseconds, or throws with what went wrong.
 */

export interface Runner {
  name: string;
  /** What it does beyond exec, so the table is read fairly. */
  note: string;
  run(): Promise<number>;
  /** Frees what setup made (state directories, leftover containers). */
  cleanup?(): void;
}

const elapsedMs = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6;

/** Ours: a spawn program built per run, from this already-running Node process. */
export function sdSpawnRunner(rootfs: string): Runner {
  return {
    name: 'sd spawn (library)',
    note: 'user+mnt+pid+uts+ipc+net+cgroup ns, uid map, bind root, /proc, pivot_root, hostname',
    async run() {
      const start = process.hrtime.bigint();
      const p = new SpawnProgram();
      p.stdio().waitForParent();
      privatizeMounts(p)
        .mount(rootfs, rootfs, null, MS.BIND | MS.REC)
        .mount('proc', `${rootfs}/proc`, 'proc', MS.NOSUID | MS.NODEV | MS.NOEXEC);
      pivotInto(p, rootfs).sethostname('bench').resetSignals().execve('/bin/true', ['true'], []);
      const child = await spawn(p, {
        cloneFlags: ALL_NAMESPACES,
        // Identity map: root stays root, as with the other tools.
        beforeRun: (c) => writeIdMaps(c.pid, 0, 0, 65536),
      });
      const status = await child.exited;
      const ms = elapsedMs(start);
      if (exitCodeOf(status) !== 0) throw new Error(`/bin/true exited with ${exitCodeOf(status)}`);
      return ms;
    },
  };
}

function external(name: string, note: string, cmd: string, args: () => string[]): Runner {
  return {
    name,
    note,
    async run() {
      const a = args();
      const start = process.hrtime.bigint();
      const r = spawnSync(cmd, a, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
      const ms = elapsedMs(start);
      if (r.error) throw r.error;
      if (r.status !== 0) throw new Error(`${cmd} exited with ${r.status ?? r.signal}: ${r.stderr.trim()}`);
      return ms;
    },
  };
}

export function unshareRunner(rootfs: string): Runner {
  return external(
    'unshare -fpmiun --root',
    'pid+mnt+ipc+uts+net ns (no user, no cgroup ns), chroot, no /proc',
    'unshare',
    () => ['-fpmiun', `--root=${rootfs}`, '/bin/true'],
  );
}

/** Whether /sys/fs/cgroup is a plain cgroup2 mount (crun 1.8 refuses cgroup v1/hybrid hosts). */
export function unifiedCgroups(): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === '/sys/fs/cgroup' && / - cgroup2 /.test(l));
}

/**
 * On a hybrid-cgroup host: a process holding a private mount namespace with
 * a plain cgroup2 mount on /sys/fs/cgroup, for crun to run in through
 * nsenter. The host's mounts are untouched; the namespace dies with it.
 */
export async function cgroup2Holder(): Promise<ChildProcess> {
  const holder = spawnProcess(
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount -t cgroup2 none /sys/fs/cgroup && echo ready && exec sleep infinity',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    holder.once('error', reject);
    holder.once('exit', (code) => reject(new Error(`cgroup2 namespace holder exited with ${code}`)));
    holder.stdout?.once('data', () => resolve());
  });
  holder.removeAllListeners('exit');
  return holder;
}

export function crunRunner(dir: string, rootfs: string, nsenterPid?: number): Runner {
  const bundle = join(dir, 'crun-bundle');
  const state = join(dir, 'crun-state');
  mkdirSync(bundle, { recursive: true });
  mkdirSync(state, { recursive: true });
  // The smallest config that still isolates like a container: the same
  // namespaces as ours minus user, /proc, a read-only root. No seccomp,
  // as ours has none yet.
  const config = {
    ociVersion: '1.0.2',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/bin/true'], env: ['PATH=/bin'], cwd: '/' },
    root: { path: rootfs, readonly: true },
    hostname: 'bench',
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: {
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup'].map((type) => ({ type })),
    },
  };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(config, null, 2));
  let n = 0;
  const crunArgs = () => ['--root', state, 'run', '--bundle', bundle, `sd-bench-${process.pid}-${n++}`];
  const runner =
    nsenterPid === undefined
      ? external(
          'crun run',
          'pid+mnt+ipc+uts+net+cgroup ns (no user ns), /proc, read-only root',
          'crun',
          crunArgs,
        )
      : external(
          'crun run (via nsenter)',
          'as crun, plus an nsenter exec into a mount ns with plain cgroup2 (host is hybrid)',
          'nsenter',
          () => ['-t', String(nsenterPid), '-m', 'crun', '--cgroup-manager=disabled', ...crunArgs()],
        );
  runner.cleanup = () => {
    // A run cut short by Ctrl-C can leave its container registered.
    const crun = (args: string[]) =>
      nsenterPid === undefined
        ? spawnSync('crun', args, { encoding: 'utf8' })
        : spawnSync('nsenter', ['-t', String(nsenterPid), '-m', 'crun', ...args], { encoding: 'utf8' });
    const list = crun(['--root', state, 'list', '-q']);
    for (const id of (list.stdout ?? '').split('\n').filter(Boolean))
      crun(['--root', state, 'delete', '-f', id]);
  };
  return runner;
}

export function nspawnRunner(rootfs: string): Runner {
  return external(
    'systemd-nspawn',
    '--register=no --keep-unit: all of nspawn (seccomp, /dev, /sys, caps...)',
    'systemd-nspawn',
    () => ['--register=no', '--keep-unit', '-q', '-D', rootfs, '/bin/true'],
  );
}

/** Whether an executable is on PATH. */
export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

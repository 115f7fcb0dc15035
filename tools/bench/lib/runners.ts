import { type ChildProcess, spawn as spawnProcess, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ReferenceCgroup } from './reference-cgroup.js';

/**
 * What the benchmarks share about their contenders: each runs a payload in
 * the busybox root once and returns the wall time in milliseconds, or throws
 * with what went wrong. Reference tools (crun, systemd-nspawn) live here; the
 * benchmark-specific ones next to each benchmark.
 */

export interface Runner {
  name: string;
  /** What it does beyond exec, so the table is read fairly. */
  note: string;
  run(): Promise<number>;
  /** Frees what setup made (state directories, leftover containers). */
  cleanup?(): void;
}

export const elapsedMs = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6;

export interface ExternalOptions {
  /** Kills the tool after this many ms and fails the run. */
  timeout?: number;
}

/**
 * A runner that starts a program and waits for it to exit 0. Asynchronously:
 * a blocked event loop could not answer Ctrl-C, and tsx, which relays it,
 * SIGKILLs a child that does not answer within 30 ms — cleanup would never run.
 */
export function external(
  name: string,
  note: string,
  cmd: string,
  args: () => string[],
  options: ExternalOptions = {},
): Runner {
  return {
    name,
    note,
    run() {
      const a = args();
      return new Promise<number>((resolve, reject) => {
        const start = process.hrtime.bigint();
        const child = spawnProcess(cmd, a, { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr?.setEncoding('utf8').on('data', (d: string) => {
          stderr = (stderr + d).slice(-4096);
        });
        const timer =
          options.timeout === undefined
            ? undefined
            : setTimeout(() => child.kill('SIGKILL'), options.timeout);
        child.once('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        // Timed at exit; settled at close, once stderr is read to its end.
        let ms = 0;
        child.once('exit', () => {
          ms = elapsedMs(start);
        });
        child.once('close', (code, signal) => {
          clearTimeout(timer);
          if (code === 0) return resolve(ms);
          const err = stderr.trim().split('\n').slice(-3).join(' | ');
          reject(new Error(`${cmd} exited with ${code ?? signal}: ${err}`));
        });
      });
    },
  };
}

/**
 * A note when the environment slows every Node start: NODE_EXTRA_CA_CERTS
 * makes Node read and parse that bundle before any script runs (here
 * `node -e 0` took 70 ms with it, 24 ms without). Overheads over `node -e 0`
 * stay comparable; absolute start times do not.
 */
export function nodeStartNote(): string | undefined {
  const certs = process.env.NODE_EXTRA_CA_CERTS;
  if (!certs) return undefined;
  return `NODE_EXTRA_CA_CERTS=${certs} is set: every Node start parses it first; run under \`env -u NODE_EXTRA_CA_CERTS\` for a plain start`;
}

/** Whether an executable is on PATH. */
export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** apt-get installs the packages (the reference tools); goes on with what is there if that fails. */
export function aptInstall(packages: string[]): void {
  process.stdout.write(`bench: installing ${packages.join(' ')}\n`);
  const r = spawnSync('apt-get', ['install', '-y', ...packages], { stdio: 'inherit' });
  if (r.status !== 0) process.stderr.write('bench: apt-get install failed; going on with what is there\n');
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

export interface CrunOptions {
  /** Runs crun inside this process's mount namespace (see cgroup2Holder). */
  nsenterPid?: number;
  /** Row name; 'crun run' by default. */
  name?: string;
  /** Sub-directory of `dir` for bundle and state, so that variants do not share one. */
  tag?: string;
  /** A seccomp allow-list: these calls are allowed, the rest fail with EPERM (crun builds it with libseccomp per run). */
  allowedSyscalls?: readonly string[];
}

export function crunRunner(dir: string, rootfs: string, options: CrunOptions = {}): Runner {
  const { nsenterPid, tag = 'crun', allowedSyscalls } = options;
  const bundle = join(dir, `${tag}-bundle`);
  const state = join(dir, `${tag}-state`);
  mkdirSync(bundle, { recursive: true });
  mkdirSync(state, { recursive: true });
  // The smallest config that still isolates like a container: pid, mount,
  // ipc, uts, net and cgroup namespaces (no user ns), /proc, a read-only
  // root; seccomp only when asked for (crun has no default filter).
  const seccomp = allowedSyscalls && {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 1,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [{ names: [...allowedSyscalls], action: 'SCMP_ACT_ALLOW' }],
  };
  const config = {
    ociVersion: '1.0.2',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/bin/true'], env: ['PATH=/bin'], cwd: '/' },
    root: { path: rootfs, readonly: true },
    hostname: 'bench',
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: {
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup'].map((type) => ({ type })),
      ...(seccomp ? { seccomp } : {}),
    },
  };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(config, null, 2));
  let n = 0;
  const crunArgs = () => [
    '--root',
    state,
    'run',
    '--bundle',
    bundle,
    `sd-bench-${process.pid}-${tag}-${n++}`,
  ];
  const what = `pid+mnt+ipc+uts+net+cgroup ns (no user ns), /proc, read-only root, ${
    seccomp ? `seccomp allowing ${allowedSyscalls.length} calls` : 'no seccomp'
  }`;
  const runner =
    nsenterPid === undefined
      ? external(options.name ?? 'crun run', what, 'crun', crunArgs)
      : external(
          `${options.name ?? 'crun run'} (via nsenter)`,
          `${what}; plus an nsenter exec into a mount ns with plain cgroup2 (host is hybrid)`,
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

/**
 * systemd-nspawn without machined and scope unit; `extra` goes before the
 * command. Each run in a cgroup of its own, removed after it (ReferenceCgroup).
 */
export function nspawnRunner(
  rootfs: string,
  command: string[] = ['/bin/true'],
  extra: string[] = [],
  options: ExternalOptions & { name?: string } = {},
): Runner {
  const cg = new ReferenceCgroup('nspawn');
  let argv: [string, string[]] = ['systemd-nspawn', []];
  const inner = external(
    options.name ?? 'systemd-nspawn',
    '--register=no --keep-unit: all of nspawn (seccomp, /dev, /sys, caps...)',
    '/bin/sh',
    () => argv[1],
    options,
  );
  return {
    ...inner,
    async run() {
      argv = cg.argv('systemd-nspawn', [
        '--register=no',
        '--keep-unit',
        '-q',
        '-D',
        rootfs,
        ...extra,
        ...command,
      ]);
      try {
        return await inner.run();
      } finally {
        await cg.remove();
      }
    },
  };
}

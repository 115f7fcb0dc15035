import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { CLONE, closeQuietly, openNamespace, SpawnProgram, spawn } from '@sd/sys';

/**
 * Two network namespaces joined by a veth pair, made by the test and torn
 * down by it: the only place the DHCP and IPv4LL tests send anything.
 * Names start with "sddhcp" so they cannot collide with other suites.
 */

export interface NsPair {
  /** Namespace holders' pids (the namespaces live as long as they do), and ns fds. */
  nsA: number;
  nsB: number;
  fdA: number;
  fdB: number;
  /** The veth ends: ifA in nsA, ifB in nsB. */
  ifA: string;
  ifB: string;
  /** Runs a command inside a namespace; returns stdout. */
  run(ns: number, cmd: string[], timeoutMs?: number): string;
  /** The same, without blocking the event loop. */
  runAsync(ns: number, cmd: string[], timeoutMs?: number): Promise<string>;
  /** `ip ARGS` inside a namespace. */
  ip(ns: number, ...args: string[]): string;
  /** IPv4 addresses (a.b.c.d/len) of a link in a namespace. */
  addresses(ns: number, ifname: string): string[];
  cleanup(): Promise<void>;
}

let counter = 0;

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function nsRun(pid: number, cmd: string[], timeoutMs = 20_000): string {
  return execFileSync('nsenter', ['-t', String(pid), '-n', ...cmd], {
    encoding: 'utf8',
    timeout: timeoutMs,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * Runs a command in a namespace without blocking the event loop (our server
 * and client in this process must keep answering meanwhile).
 */
export async function nsRunAsync(pid: number, cmd: string[], timeoutMs = 30_000): Promise<string> {
  const r = await promisify(execFile)('nsenter', ['-t', String(pid), '-n', ...cmd], {
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return r.stdout;
}

/** A network namespace held by a sleeping process (no /run/netns entry, no mount). */
export async function makeNetns(): Promise<{ pid: number; fd: number; stop(): Promise<void> }> {
  const p = new SpawnProgram();
  p.resetSignals().execve('/bin/sleep', ['sleep', '3600'], []);
  const child = await spawn(p, { cloneFlags: CLONE.NEWNET });
  const fd = openNamespace(child.pid, 'net');
  return {
    pid: child.pid,
    fd,
    stop: async () => {
      closeQuietly(fd);
      child.kill(9);
      await child.exited;
    },
  };
}

export async function makeNsPair(options: { up?: boolean } = {}): Promise<NsPair> {
  const n = `${process.pid % 1000}${counter++}`;
  const ifA = `sddhcp${n}a`.slice(0, 15);
  const ifB = `sddhcp${n}b`.slice(0, 15);
  const holders: Array<Awaited<ReturnType<typeof makeNetns>>> = [];
  const cleanup = async () => {
    // The veth goes with its namespaces.
    for (const h of holders) await h.stop();
  };
  try {
    holders.push(await makeNetns(), await makeNetns());
    const [a, b] = holders as [(typeof holders)[0], (typeof holders)[0]];
    ip(
      'link',
      'add',
      ifA,
      'netns',
      String(a.pid),
      'type',
      'veth',
      'peer',
      'name',
      ifB,
      'netns',
      String(b.pid),
    );
    for (const h of holders) nsRun(h.pid, ['ip', 'link', 'set', 'lo', 'up']);
    if (options.up ?? true) {
      nsRun(a.pid, ['ip', 'link', 'set', ifA, 'up']);
      nsRun(b.pid, ['ip', 'link', 'set', ifB, 'up']);
    }
  } catch (e) {
    await cleanup();
    throw e;
  }
  const [a, b] = holders as [(typeof holders)[0], (typeof holders)[0]];
  return {
    nsA: a.pid,
    nsB: b.pid,
    fdA: a.fd,
    fdB: b.fd,
    ifA,
    ifB,
    run: nsRun,
    runAsync: nsRunAsync,
    ip: (ns, ...args) => nsRun(ns, ['ip', ...args]),
    addresses: (ns, ifname) => {
      const out = JSON.parse(nsRun(ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', ifname])) as Array<{
        addr_info: Array<{ local: string; prefixlen: number }>;
      }>;
      return out.flatMap((l) => l.addr_info.map((x) => `${x.local}/${x.prefixlen}`));
    },
    cleanup,
  };
}

/** Resolves with the first emission of `event`, or rejects after `ms`. */
export function once<T>(
  emitter: { once(e: string, f: (v: T) => void): unknown },
  event: string,
  ms = 15_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no '${event}' within ${ms} ms`)), ms);
    emitter.once(event, (v: T) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { read, SyscallError, setNonBlocking } from '@sd/sys';
import { connectBus, dbus, type MessageBus } from '../src/index.js';

/** Helpers of the daemon's integration tests: the daemon and sd-nspawn as processes, a bus client. */

const repo = fileURLToPath(new URL('../../../', import.meta.url));
export const MACHINED = join(repo, 'packages/machined/src/machined.ts');
export const NSPAWN = join(repo, 'packages/nspawn/src/cli.ts');
/** Runs a TypeScript entry point from source (workspace packages resolve to src/ with sd-source). */
export const TS_ARGS = ['--conditions=sd-source', '--import', 'tsx'];

export function canRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  if (spawnSync('dbus-daemon', ['--version']).status !== 0) return 'dbus-daemon is not installed';
  if (!['/bin/busybox', '/usr/bin/busybox'].some(existsSync)) return 'busybox is not installed';
  return undefined;
}

export function makeTree(): { dir: string; remove: () => void } {
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find(existsSync)!;
  const dir = mkdtempSync(join(tmpdir(), 'sd-machined-tree-'));
  for (const d of ['bin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev', 'run', 'var']) mkdirSync(join(dir, d));
  copyFileSync(busybox, join(dir, 'bin/busybox'));
  const list = spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const a of list) if (a !== 'busybox') symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(
    join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(
    join(dir, 'etc/os-release'),
    'ID=busybox\nNAME=BusyBox\nPRETTY_NAME="BusyBox test tree"\nVERSION_ID=1\n',
  );
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Daemon {
  proc: ChildProcess;
  log: () => string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startDaemon(env: NodeJS.ProcessEnv, root: string, bus: MessageBus): Promise<Daemon> {
  const proc = spawn(process.execPath, [...TS_ARGS, MACHINED, '--root', root, '--terminate-timeout=1'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout?.on('data', (d) => (log += d));
  proc.stderr?.on('data', (d) => (log += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  for (let i = 0; i < 300; i++) {
    if (await nameHasOwner(bus, 'org.freedesktop.machine1')) break;
    if (proc.exitCode !== null) throw new Error(`sd-machined exited: ${log}`);
    await sleep(50);
  }
  return {
    proc,
    log: () => log,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}

export async function nameHasOwner(bus: MessageBus, name: string): Promise<boolean> {
  const r = await bus.call(
    new dbus.Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'NameHasOwner',
      signature: 's',
      body: [name],
    }),
  );
  return r?.body[0] === true;
}

export { connectBus };

/** Calls a Manager method; resolves with the reply body. */
export async function manager(
  bus: MessageBus,
  member: string,
  signature = '',
  body: unknown[] = [],
): Promise<unknown[]> {
  return callOn(
    bus,
    '/org/freedesktop/machine1',
    'org.freedesktop.machine1.Manager',
    member,
    signature,
    body,
  );
}

export async function callOn(
  bus: MessageBus,
  path: string,
  iface: string,
  member: string,
  signature = '',
  body: unknown[] = [],
): Promise<unknown[]> {
  const r = await bus.call(
    new dbus.Message({
      destination: 'org.freedesktop.machine1',
      path,
      interface: iface,
      member,
      signature,
      body,
    }),
  );
  return r?.body ?? [];
}

/** The D-Bus error name a call fails with (undefined when it succeeds). */
export async function errorOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as { type?: string }).type ?? String(e);
  }
}

/** Collects Manager signals on a client connection. */
export async function watchSignals(bus: MessageBus): Promise<Array<{ member: string; body: unknown[] }>> {
  const seen: Array<{ member: string; body: unknown[] }> = [];
  await bus.call(
    new dbus.Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'AddMatch',
      signature: 's',
      body: ["type='signal',interface='org.freedesktop.machine1.Manager'"],
    }),
  );
  bus.on('message', (m) => {
    if (m.type === 4 && m.interface === 'org.freedesktop.machine1.Manager')
      seen.push({ member: m.member, body: m.body });
  });
  return seen;
}

export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 15_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Reads a pty master until the other side is closed (EIO) or the timeout. */
export async function readPty(fd: number, ms = 10_000): Promise<string> {
  setNonBlocking(fd);
  let out = '';
  const end = Date.now() + ms;
  const buf = Buffer.alloc(4096);
  for (;;) {
    let n: number;
    try {
      n = read(fd, buf);
    } catch (e) {
      if (e instanceof SyscallError && e.code === 'EIO') return out;
      throw e;
    }
    if (n === 0) return out;
    if (n > 0) {
      out += buf.toString('utf8', 0, n);
      continue;
    }
    if (Date.now() > end) return out;
    await sleep(20);
  }
}

/** Starts sd-nspawn (from source) in the background. */
export function startNspawn(
  env: NodeJS.ProcessEnv,
  args: string[],
): { proc: ChildProcess; output: () => string } {
  const proc = spawn(process.execPath, [...TS_ARGS, NSPAWN, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d) => (out += d));
  proc.stderr?.on('data', (d) => (out += d));
  return { proc, output: () => out };
}

export function busctl(address: string, ...args: string[]) {
  return spawnSync('busctl', [`--address=${address}`, ...args], { encoding: 'utf8' });
}

/** Stops an sd-nspawn started by startNspawn so that it cleans up after itself (SIGTERM, then SIGKILL). */
export async function stopNspawn(n: { proc: ChildProcess } | undefined): Promise<void> {
  if (!n || n.proc.exitCode !== null || n.proc.signalCode !== null) return;
  const done = new Promise<void>((r) => n.proc.once('exit', () => r()));
  n.proc.kill('SIGTERM');
  const t = setTimeout(() => n.proc.kill('SIGKILL'), 10_000);
  await done;
  clearTimeout(t);
}

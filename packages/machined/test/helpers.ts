import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { read, SyscallError, setNonBlocking } from '@sd/sys';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import { findBusybox, makeBusyboxTree } from '../../../tools/test/busybox-tree.js';
import { peerOrSkip } from '../../../tools/test/require.js';
import { connectBus, dbus, type MessageBus } from '../src/index.js';

/** Helpers of the daemon's integration tests: the daemon and sd-nspawn as processes, a bus client. */

const repo = fileURLToPath(new URL('../../../', import.meta.url));
export const MACHINED = join(repo, 'packages/machined/src/machined.ts');
export const NSPAWN = join(repo, 'packages/nspawn/src/cli.ts');
/** Runs a TypeScript entry point from source (workspace packages resolve to src/ with sd-source). */
export const TS_ARGS = ['--conditions=sd-source', '--import', 'tsx'];

export function canRun(): string | undefined {
  if (process.getuid?.() !== 0) return peerOrSkip('needs root');
  if (spawnSync('dbus-daemon', ['--version']).status !== 0) return peerOrSkip('dbus-daemon is not installed');
  if (!findBusybox()) return peerOrSkip('busybox is not installed');
  return undefined;
}

/** A busybox root tree for a test container. */
export const makeTree = () =>
  makeBusyboxTree(
    'sd-machined-tree-',
    'ID=busybox\nNAME=BusyBox\nPRETTY_NAME="BusyBox test tree"\nVERSION_ID=1\n',
  );

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
  // 15 s for the name: tsx compiles the daemon first, and the machine is shared.
  for (let i = 0; ; i++) {
    if (await nameHasOwner(bus, 'org.freedesktop.machine1')) break;
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(
        `sd-machined exited (${proc.exitCode ?? proc.signalCode}) before taking its name: ${log}`,
      );
    if (i >= 300) {
      proc.kill('SIGKILL');
      await exited;
      throw new Error(`sd-machined did not take org.freedesktop.machine1 within 15 s: ${log}`);
    }
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

/** What the machinectl tests run against: a private bus, sd-machined, one pool image, one container. */
export interface MachineFixture {
  bus: PrivateBus;
  client: MessageBus;
  daemon: Daemon;
  /** The root the daemon's paths are under (its pool is root/var/lib/machines). */
  root: string;
  tree: { dir: string; remove: () => void };
  nspawn: ReturnType<typeof startNspawn>;
  stop(): Promise<void>;
}

export async function startMachineFixture(name: string): Promise<MachineFixture> {
  const bus = await startPrivateBus();
  const root = mkdtempSync(join(tmpdir(), 'sd-machined-root-'));
  const client = await connectBus(bus.address);
  mkdirSync(join(root, 'var/lib/machines/img1/etc'), { recursive: true });
  writeFileSync(join(root, 'var/lib/machines/img1/etc/os-release'), 'ID=test\nPRETTY_NAME="Test image"\n');
  const daemon = await startDaemon(bus.env, root, client);
  const tree = makeTree();
  const nspawn = startNspawn(bus.env, [
    '-D',
    tree.dir,
    '-M',
    name,
    '--private-network',
    'sh',
    '-c',
    'trap "exit 0" TERM; while :; do sleep 0.1; done',
  ]);
  const names = async () => ((await manager(client, 'ListMachines'))[0] as unknown[][]).map((r) => r[0]);
  await waitFor('the container', async () => (await names()).includes(name), 30_000);
  return {
    bus,
    client,
    daemon,
    root,
    tree,
    nspawn,
    async stop() {
      await stopNspawn(nspawn);
      await daemon.stop();
      client.disconnect();
      await bus.stop();
      tree.remove();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

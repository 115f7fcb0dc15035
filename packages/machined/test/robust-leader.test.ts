import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeQuietly, LOCK, O, open, tryFlock } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import { candidateShift, rangeLockPath } from '../../nspawn/src/container/userns.js';
import { MachineCgroup, type MessageBus } from '../src/index.js';
import {
  callOn,
  canRun,
  connectBus,
  errorOf,
  makeTree,
  manager,
  startNspawn,
  stopNspawn,
  waitFor,
  watchSignals,
} from './helpers.js';
import { listNames, type RobustDaemon, sleeper, startRobustDaemon } from './robust-lib.js';

// Who may lead a machine (issue 10, item 3), and what is left after an
// sd-nspawn is killed with SIGKILL (item 7). Machine names start with "rob".

const skip = canRun();
let bus: PrivateBus;
let client: MessageBus;
let daemon: RobustDaemon;
let root: string;
let tree: ReturnType<typeof makeTree>;
let signals: Array<{ member: string; body: unknown[] }>;
const procs: ChildProcess[] = [];
const containers: Array<ReturnType<typeof startNspawn>> = [];

beforeAll(async () => {
  if (skip) return;
  bus = await startPrivateBus();
  root = mkdtempSync(join(tmpdir(), 'sd-robust-leader-'));
  client = await connectBus(bus.address);
  signals = await watchSignals(client);
  daemon = await startRobustDaemon(bus.env, root, client);
  tree = makeTree();
});

afterAll(async () => {
  if (skip) return;
  for (const p of procs) p.kill('SIGKILL');
  for (const c of containers) await stopNspawn(c);
  await daemon?.stop();
  client?.disconnect();
  await bus?.stop();
  tree?.remove();
  rmSync(root, { recursive: true, force: true });
});

const create = (method: string, name: string, leader: number) =>
  method === 'CreateMachine'
    ? manager(client, method, 'sayssusa(sv)', [name, [], 'test', 'container', leader, '', []])
    : manager(client, method, 'sayssus', [name, [], 'test', 'container', leader, '']);

describe.skipIf(skip)('sd-machined machine leaders', () => {
  it('refuses PID 1, the daemon itself and the bus daemon as leaders, with either method', async () => {
    const cgroupOf = (pid: number) => readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    const before = [1, daemon.pid, bus.pid].map(cgroupOf);
    for (const method of ['CreateMachine', 'RegisterMachine'])
      for (const [what, pid] of [
        ['pid1', 1],
        ['self', daemon.pid],
        ['bus', bus.pid],
      ] as const)
        expect([method, what, await errorOf(create(method, `rob${what}`, pid))]).toEqual([
          method,
          what,
          'org.freedesktop.DBus.Error.InvalidArgs',
        ]);
    expect(await listNames(client)).toEqual(['.host']);
    // Nobody was moved into a machine scope.
    expect([1, daemon.pid, bus.pid].map(cgroupOf)).toEqual(before);
  });

  it('RegisterMachine refuses a leader that is not in a scope made for that machine', async () => {
    const p = sleeper();
    procs.push(p);
    await waitFor('the process', () => existsSync(`/proc/${p.pid}`));
    const err = await errorOf(create('RegisterMachine', 'robplain', p.pid!));
    expect(err).toBe('org.freedesktop.DBus.Error.InvalidArgs');
    expect(await listNames(client)).not.toContain('robplain');
    // CreateMachine makes the scope itself: the same process may lead a machine made that way.
    await create('CreateMachine', 'robplain', p.pid!);
    expect(MachineCgroup.ofProcess(p.pid!)?.mainPath).toBe('machine.slice/machine-robplain.scope');
    await manager(client, 'TerminateMachine', 's', ['robplain']);
    await waitFor('robplain to go', async () => !(await listNames(client)).includes('robplain'));
  });

  it('drops the empty scope of an sd-nspawn killed with SIGKILL', async () => {
    const n = startNspawn(bus.env, [
      '-D',
      tree.dir,
      '-M',
      'robkill9',
      '--private-network',
      'sh',
      '-c',
      'trap "exit 0" TERM; while :; do sleep 0.1; done',
    ]);
    containers.push(n);
    await waitFor('robkill9', async () => (await listNames(client)).includes('robkill9'), 60_000);
    const [path] = await manager(client, 'GetMachine', 's', ['robkill9']);
    const [v] = await callOn(client, String(path), 'org.freedesktop.DBus.Properties', 'Get', 'ss', [
      'org.freedesktop.machine1.Machine',
      'Leader',
    ]);
    const leader = (v as { value: number }).value;
    const cg = MachineCgroup.ofProcess(leader)!;
    expect(cg.mainPath).toMatch(/machine\.slice\/machine-robkill9\.scope$/);
    n.proc.kill('SIGKILL');
    await waitFor('MachineRemoved', () =>
      signals.some((s) => s.member === 'MachineRemoved' && s.body[0] === 'robkill9'),
    );
    // Within a moment, in every hierarchy.
    await waitFor('the scope to go', () => cg.dirs.every((d) => !existsSync(d)), 3000).catch(() => {
      throw new Error(`left behind: ${cg.dirs.filter((d) => existsSync(d)).join(', ')}`);
    });
    // Killed, sd-nspawn could not remove its uid range's lock file (a later start of the
    // machine would reuse it): removed here, once nobody holds it.
    const lock = rangeLockPath('/run/sd-nspawn', candidateShift('robkill9', 0));
    if (existsSync(lock)) {
      const fd = open(lock, O.RDWR);
      try {
        if (tryFlock(fd, LOCK.EX, lock)) rmSync(lock);
      } finally {
        closeQuietly(fd);
      }
    }
  }, 120_000);
});

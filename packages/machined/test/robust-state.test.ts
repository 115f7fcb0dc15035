import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeQuietly, O, open, read, setNonBlocking, writeAll } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import { MachineCgroup, type MessageBus } from '../src/index.js';
import { processStartTime } from '../src/registry/leader.js';
import { canRun, connectBus, makeTree, manager, startNspawn, stopNspawn, waitFor } from './helpers.js';
import { listNames, type RobustDaemon, sleeper, startRobustDaemon } from './robust-lib.js';

// sd-machined's state directory under faults (issue 10, items 1 and 2):
// links, FIFOs, garbage, truncated and huge files beside running machines,
// and kill -9 of the daemon. Machine names start with "rob".

const skip = canRun();
let bus: PrivateBus;
let client: MessageBus;
let daemon: RobustDaemon | undefined;
let root: string;
let outside: string;
let stateDir: string;
const procs: ChildProcess[] = [];
const fds: number[] = [];
let tree: ReturnType<typeof makeTree>;
let container: ReturnType<typeof startNspawn> | undefined;

beforeAll(async () => {
  if (skip) return;
  bus = await startPrivateBus();
  root = mkdtempSync(join(tmpdir(), 'sd-robust-state-'));
  outside = mkdtempSync(join(tmpdir(), 'sd-robust-outside-'));
  stateDir = join(root, 'run/systemd/machines');
  mkdirSync(stateDir, { recursive: true });
  client = await connectBus(bus.address);
  tree = makeTree();
});

afterAll(async () => {
  if (skip) return;
  for (const p of procs) p.kill('SIGKILL');
  await stopNspawn(container);
  closeQuietly(...fds);
  await daemon?.stop('SIGKILL');
  client?.disconnect();
  await bus?.stop();
  tree?.remove();
  rmSync(root, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

describe.skipIf(skip)('sd-machined state directory', () => {
  it('starts with a symlinked, a FIFO and a link-to-FIFO state file: follows none, opens nothing outside, keeps them', async () => {
    // A process that is not a machine, described by a fake state file outside the directory.
    const victim = sleeper();
    procs.push(victim);
    await waitFor('the victim', () => processStartTime(victim.pid!) !== undefined);
    const fake = join(outside, 'fake');
    writeFileSync(
      fake,
      `NAME=robevil\nLEADER=${victim.pid}\nLEADER_STARTTIME=${processStartTime(victim.pid!)}\nCLASS=container\nSCOPE_OWNED=no\n`,
    );
    symlinkSync(fake, join(stateDir, 'robevil'));
    symlinkSync('/etc/shadow', join(stateDir, 'robshadow'));
    expect(spawnSync('mkfifo', [join(stateDir, 'robfifo')]).status).toBe(0);
    // A FIFO outside with data in it: whoever opens it through the link would read (consume) it.
    const outFifo = join(outside, 'fifo');
    expect(spawnSync('mkfifo', [outFifo]).status).toBe(0);
    const keep = open(outFifo, O.RDWR | O.NONBLOCK);
    fds.push(keep);
    writeAll(keep, 'NAME=robfifo2\n');
    symlinkSync(outFifo, join(stateDir, 'robfifo2'));

    daemon = await startRobustDaemon(bus.env, root, client, 10_000);
    expect(await listNames(client)).toEqual(['.host']);
    // Nothing was read from the FIFO outside.
    setNonBlocking(keep);
    const buf = Buffer.alloc(64);
    expect(buf.toString('utf8', 0, read(keep, buf))).toBe('NAME=robfifo2\n');
    // Every bad entry is still there, and reported.
    for (const n of ['robevil', 'robshadow', 'robfifo', 'robfifo2'])
      expect(lstatSync(join(stateDir, n)).isFile()).toBe(false);
    const log = daemon.log();
    expect(log).toMatch(/State: 0 machines restored, 4 skipped/);
    expect(log).toContain(`Skipped state file 'robevil': a symbolic link, not followed`);
    expect(log).toContain(`Skipped state file 'robfifo': not a regular file`);
    // The victim is untouched: not moved into any machine scope.
    expect(readFileSync(`/proc/${victim.pid}/cgroup`, 'utf8')).not.toContain('machine.slice');
  });

  it('kill -9 and restart with machines running and bad files beside them: every machine is back, no file deleted', async () => {
    // A container (RegisterMachine, sd-nspawn's scope) and a machine whose scope we made (CreateMachine).
    container = startNspawn(bus.env, [
      '-D',
      tree.dir,
      '-M',
      'robnspawn',
      '--private-network',
      'sh',
      '-c',
      'trap "exit 0" TERM; while :; do sleep 0.1; done',
    ]);
    await waitFor('robnspawn', async () => (await listNames(client)).includes('robnspawn'), 60_000);
    const created = sleeper();
    const trunc = sleeper();
    procs.push(created, trunc);
    for (const [n, p] of [
      ['robcreated', created],
      ['robtrunc', trunc],
    ] as const)
      await manager(client, 'CreateMachine', 'sayssusa(sv)', [n, [], 'test', 'container', p.pid, '', []]);
    expect(MachineCgroup.ofProcess(trunc.pid!)?.mainPath).toBe('machine.slice/machine-robtrunc.scope');

    await daemon!.stop('SIGKILL');
    // The state file of a running machine cut short (a crash mid-write of another tool, a full disk).
    const full = readFileSync(join(stateDir, 'robtrunc'), 'utf8');
    writeFileSync(join(stateDir, 'robtrunc'), full.slice(0, full.indexOf('LEADER=') + 4));
    writeFileSync(join(stateDir, 'robgarbage'), Buffer.from([0xff, 0x00, 0x13, 0x37, 0x0a, 0x3d]));
    writeFileSync(join(stateDir, 'robempty'), '');
    writeFileSync(join(stateDir, 'robhuge'), `NAME=robhuge\n${'X='.padEnd(6_600_000, 'y')}\n`);

    daemon = await startRobustDaemon(bus.env, root, client, 10_000);
    const names = await listNames(client);
    expect(names).toEqual(expect.arrayContaining(['robnspawn', 'robcreated', 'robtrunc']));
    for (const n of ['robevil', 'robfifo', 'robgarbage', 'robempty', 'robhuge']) {
      expect(names).not.toContain(n);
      expect(existsSync(join(stateDir, n)) || lstatSync(join(stateDir, n)).isSymbolicLink()).toBe(true);
    }
    const log = daemon.log();
    expect(log).toMatch(/State: 3 machines restored \(1 found again by their scope\), 7 skipped/);
    expect(log).toContain(`Skipped state file 'robhuge': too large`);
    expect(log).toContain(`Skipped state file 'robempty': empty or not a state file`);
    // The machine found again is whole: its state file is rewritten and it can be terminated.
    expect(readFileSync(join(stateDir, 'robtrunc'), 'utf8')).toContain(`LEADER=${trunc.pid}`);
    await manager(client, 'TerminateMachine', 's', ['robtrunc']);
    await waitFor('robtrunc to end', () => trunc.exitCode !== null || trunc.signalCode !== null);
    await waitFor('robtrunc to go', async () => !(await listNames(client)).includes('robtrunc'));
    await manager(client, 'TerminateMachine', 's', ['robcreated']);
    await waitFor('robcreated to go', async () => !(await listNames(client)).includes('robcreated'));
    await stopNspawn(container);
    await waitFor('robnspawn to go', async () => !(await listNames(client)).includes('robnspawn'));
  }, 120_000);
});

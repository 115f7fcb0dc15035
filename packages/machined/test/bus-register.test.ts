import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeQuietly, detectCgroups } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import { MachineCgroup, type MessageBus, machineObjectPath } from '../src/index.js';
import {
  callOn,
  canRun,
  connectBus,
  type Daemon,
  errorOf,
  manager,
  startDaemon,
  waitFor,
  watchSignals,
} from './helpers.js';

// The Manager's registration calls over a real bus (RegisterMachine,
// UnregisterMachine, CreateMachineWithNetwork), the host machine (.host:
// OpenMachineRootDirectory, and the copy and bind calls it refuses), and the
// methods of Image objects.

const skip = canRun();
let bus: PrivateBus;
let client: MessageBus;
let daemon: Daemon;
let root: string;
let signals: Array<{ member: string; body: unknown[] }>;
const leaders: ChildProcess[] = [];
const POOL_IMAGE = 'tstimg';

beforeAll(async () => {
  if (skip) return;
  bus = await startPrivateBus();
  root = mkdtempSync(join(tmpdir(), 'tst-machined-root-'));
  mkdirSync(join(root, 'var/lib/machines', POOL_IMAGE, 'etc'), { recursive: true });
  writeFileSync(
    join(root, 'var/lib/machines', POOL_IMAGE, 'etc/os-release'),
    'ID=tst\nPRETTY_NAME="Tst image"\n',
  );
  writeFileSync(join(root, 'var/lib/machines', POOL_IMAGE, 'etc/hostname'), 'tst-host\n');
  writeFileSync(join(root, 'var/lib/machines', POOL_IMAGE, 'etc/machine-id'), `${'ab'.repeat(16)}\n`);
  writeFileSync(join(root, 'var/lib/machines', POOL_IMAGE, 'etc/machine-info'), 'PRETTY_HOSTNAME="Tst"\n');
  client = await connectBus(bus.address);
  signals = await watchSignals(client);
  daemon = await startDaemon(bus.env, root, client);
}, 60_000);

afterAll(async () => {
  if (skip) return;
  for (const l of leaders) l.kill('SIGKILL');
  await daemon?.stop();
  client?.disconnect();
  await bus?.stop();
  // An image a failed test left read-only carries the immutable flag.
  spawnSync('chattr', ['-R', '-i', root], { stdio: 'ignore' });
  rmSync(root, { recursive: true, force: true });
});

function leader(): ChildProcess {
  const p = spawn('sleep', ['1000'], { stdio: 'ignore' });
  leaders.push(p);
  return p;
}

const names = async () => ((await manager(client, 'ListMachines'))[0] as unknown[][]).map((r) => r[0]);
const alive = (p: ChildProcess) =>
  p.exitCode === null && p.signalCode === null && existsSync(`/proc/${p.pid}`);

describe.skipIf(skip)('registration over the bus', () => {
  it('CreateMachineWithNetwork: listed with its interfaces; TerminateMachine ends the leader', async () => {
    const p = leader();
    const [path] = await manager(client, 'CreateMachineWithNetwork', 'sayssusaia(sv)', [
      'tstnet',
      [],
      'tst',
      'container',
      p.pid,
      '/',
      [1],
      [],
    ]);
    expect(path).toBe(machineObjectPath('tstnet'));
    expect(signals).toContainEqual({ member: 'MachineNew', body: ['tstnet', path] });
    const [ifaces] = await callOn(client, String(path), 'org.freedesktop.DBus.Properties', 'Get', 'ss', [
      'org.freedesktop.machine1.Machine',
      'NetworkInterfaces',
    ]);
    expect((ifaces as { value: unknown }).value).toEqual([1]);
    expect(MachineCgroup.ofProcess(p.pid!)?.mainPath).toBe('machine.slice/machine-tstnet.scope');
    await manager(client, 'TerminateMachine', 's', ['tstnet']);
    await waitFor('the leader to die', () => !alive(p));
    await waitFor('MachineRemoved', () =>
      signals.some((s) => s.member === 'MachineRemoved' && s.body[0] === 'tstnet'),
    );
    expect(await names()).not.toContain('tstnet');
  });

  it('CreateMachineWithNetwork refuses a bad interface index and registers nothing', async () => {
    const p = leader();
    expect(
      await errorOf(
        manager(client, 'CreateMachineWithNetwork', 'sayssusaia(sv)', [
          'tstbadif',
          [],
          'tst',
          'container',
          p.pid,
          '',
          [0],
          [],
        ]),
      ),
    ).toBe('org.freedesktop.DBus.Error.InvalidArgs');
    expect(await names()).not.toContain('tstbadif');
    expect(alive(p)).toBe(true);
  });

  it('RegisterMachine keeps the cgroup its manager made; UnregisterMachine forgets it and leaves the processes', async () => {
    const p = leader();
    // A scope of the caller's own making for this machine, as a service manager would have put the
    // leader in (a leader anywhere else is refused: it could name a cgroup full of other processes).
    const unified = detectCgroups().unifiedRoot;
    if (unified === undefined) throw new Error('this test needs the unified cgroup hierarchy');
    const scope = join(unified, 'machine.slice', 'machine-tstreg.scope');
    mkdirSync(scope, { recursive: true });
    writeFileSync(join(scope, 'cgroup.procs'), String(p.pid));
    const cg = MachineCgroup.ofProcess(p.pid!);
    expect(cg?.mainPath).toMatch(/machine\.slice\/machine-tstreg\.scope$/);
    const [path] = await manager(client, 'RegisterMachine', 'sayssus', [
      'tstreg',
      [],
      'tst',
      'container',
      p.pid,
      '',
    ]);
    expect(path).toBe(machineObjectPath('tstreg'));
    expect(await names()).toContain('tstreg');
    // Not moved into a machine scope: RegisterMachine takes the leader's cgroup as it is.
    expect(MachineCgroup.ofProcess(p.pid!)?.mainPath).toBe(cg?.mainPath);
    expect((await manager(client, 'GetMachineByPID', 'u', [p.pid]))[0]).toBe(path);
    await manager(client, 'UnregisterMachine', 's', ['tstreg']);
    await waitFor('MachineRemoved', () =>
      signals.some((s) => s.member === 'MachineRemoved' && s.body[0] === 'tstreg'),
    );
    expect(await names()).not.toContain('tstreg');
    expect(alive(p)).toBe(true);
    expect(await errorOf(manager(client, 'UnregisterMachine', 's', ['tstreg']))).toBe(
      'org.freedesktop.machine1.NoSuchMachine',
    );
    p.kill('SIGKILL');
    await waitFor('the leader to die', () => !alive(p));
    rmdirSync(scope);
  });
});

describe.skipIf(skip)('the host machine', () => {
  it('OpenMachineRootDirectory(.host) hands out the host root', async () => {
    const [fd] = (await manager(client, 'OpenMachineRootDirectory', 's', ['.host'])) as [number];
    try {
      const a = fstatSync(fd);
      const b = statSync('/');
      expect([a.dev, a.ino]).toEqual([b.dev, b.ino]);
    } finally {
      closeQuietly(fd);
    }
  });

  it('refuses to copy to or from .host and to bind mount into it, changing nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tst-host-copy-'));
    try {
      writeFileSync(join(dir, 'src'), 'x\n');
      for (const [member, sig, body] of [
        ['CopyToMachine', 'sss', ['.host', join(dir, 'src'), join(dir, 'to')]],
        ['CopyFromMachine', 'sss', ['.host', join(dir, 'src'), join(dir, 'from')]],
        ['BindMountMachine', 'sssbb', ['.host', dir, join(dir, 'bound'), false, true]],
      ] as const) {
        expect(await errorOf(manager(client, member, sig, [...body])), member).toBe(
          'org.freedesktop.DBus.Error.NotSupported',
        );
      }
      expect(existsSync(join(dir, 'to'))).toBe(false);
      expect(existsSync(join(dir, 'from'))).toBe(false);
      expect(existsSync(join(dir, 'bound'))).toBe(false);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(skip)('Image objects', () => {
  const IMAGE = 'org.freedesktop.machine1.Image';
  const on = (path: string, member: string, sig = '', body: unknown[] = []) =>
    callOn(client, path, IMAGE, member, sig, body);
  const prop = async (path: string, name: string) =>
    (
      (await callOn(client, path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [IMAGE, name]))[0] as {
        value: unknown;
      }
    ).value;

  it('read the metadata inside the image', async () => {
    const [path] = (await manager(client, 'GetImage', 's', [POOL_IMAGE])) as [string];
    expect((await on(path, 'GetOSRelease'))[0]).toMatchObject({ ID: 'tst', PRETTY_NAME: 'Tst image' });
    expect((await on(path, 'GetHostname'))[0]).toBe('tst-host');
    expect(Buffer.from((await on(path, 'GetMachineID'))[0] as Buffer).toString('hex')).toBe('ab'.repeat(16));
    expect((await on(path, 'GetMachineInfo'))[0]).toMatchObject({ PRETTY_HOSTNAME: 'Tst' });
    expect(await prop(path, 'Name')).toBe(POOL_IMAGE);
    expect(await prop(path, 'Type')).toBe('directory');
  });

  it('Clone, MarkReadOnly, Rename, SetLimit, Remove on the object', async () => {
    const [path] = (await manager(client, 'GetImage', 's', [POOL_IMAGE])) as [string];
    await on(path, 'Clone', 'sb', ['tstclone', false]);
    const [clone] = (await manager(client, 'GetImage', 's', ['tstclone'])) as [string];
    expect(readFileSync(join(root, 'var/lib/machines/tstclone/etc/os-release'), 'utf8')).toContain('ID=tst');
    await on(clone, 'MarkReadOnly', 'b', [true]);
    expect(await prop(clone, 'ReadOnly')).toBe(true);
    expect(await errorOf(on(clone, 'Rename', 's', ['tstrenamed']))).toBeUndefined();
    expect(existsSync(join(root, 'var/lib/machines/tstclone'))).toBe(false);
    const [renamed] = (await manager(client, 'GetImage', 's', ['tstrenamed'])) as [string];
    // A plain directory has no quota to set.
    expect(await errorOf(on(renamed, 'SetLimit', 't', [1n << 30n]))).toBe(
      'org.freedesktop.DBus.Error.NotSupported',
    );
    await on(renamed, 'MarkReadOnly', 'b', [false]);
    await on(renamed, 'Remove');
    expect(existsSync(join(root, 'var/lib/machines/tstrenamed'))).toBe(false);
    expect(await errorOf(manager(client, 'GetImage', 's', ['tstrenamed']))).toBe(
      'org.freedesktop.machine1.NoSuchImage',
    );
  });
});

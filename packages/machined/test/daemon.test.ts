import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeQuietly } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import { MachineCgroup, type MessageBus, machineObjectPath } from '../src/index.js';
import {
  busctl,
  canRun,
  connectBus,
  type Daemon,
  errorOf,
  makeTree,
  manager,
  readPty,
  startDaemon,
  startNspawn,
  stopNspawn,
  waitFor,
  watchSignals,
} from './helpers.js';

// sd-machined end to end (as root): a private dbus-daemon, the daemon as a
// process, containers started by sd-nspawn, clients as root and as nobody.

const skip = canRun();
let bus: PrivateBus;
let client: MessageBus;
let daemon: Daemon;
let root: string;
let tree: ReturnType<typeof makeTree>;
let signals: Array<{ member: string; body: unknown[] }>;
const leaders: ChildProcess[] = [];
const containers: Array<ReturnType<typeof startNspawn>> = [];

const listNames = async () => ((await manager(client, 'ListMachines'))[0] as unknown[][]).map((r) => r[0]);

beforeAll(async () => {
  if (skip) return;
  bus = await startPrivateBus();
  root = mkdtempSync(join(tmpdir(), 'sd-machined-root-'));
  client = await connectBus(bus.address);
  signals = await watchSignals(client);
  daemon = await startDaemon(bus.env, root, client);
  tree = makeTree();
});

afterAll(async () => {
  if (skip) return;
  for (const l of leaders) l.kill('SIGKILL');
  for (const c of containers) await stopNspawn(c);
  await daemon?.stop();
  client?.disconnect();
  await bus?.stop();
  tree?.remove();
  rmSync(root, { recursive: true, force: true });
});

/** A leader process of our own (for CreateMachine), in the host's namespaces. */
function leader(script: string): ChildProcess {
  const p = spawn('sh', ['-c', script], { stdio: ['pipe', 'ignore', 'ignore'] });
  leaders.push(p);
  return p;
}

describe.skipIf(skip)('sd-machined', () => {
  const name = 'sdtest1';
  let nspawn: ReturnType<typeof startNspawn>;
  let leaderPid: number;

  // The container every test of this block may use, whichever of them runs (-t) or fails first.
  beforeAll(async () => {
    nspawn = startNspawn(bus.env, [
      '-D',
      tree.dir,
      '-M',
      name,
      '--private-network',
      'sh',
      '-c',
      'sleep 1000 & trap "exit 0" TERM; while :; do sleep 0.1; done',
    ]);
    containers.push(nspawn);
    await waitFor('the machine', async () => (await listNames()).includes(name), 30_000);
    const leader = busctl(
      bus.address,
      '--json=short',
      'get-property',
      'org.freedesktop.machine1',
      machineObjectPath(name),
      'org.freedesktop.machine1.Machine',
      'Leader',
    );
    leaderPid = JSON.parse(leader.stdout).data;
  }, 60_000);

  it('lists a container started with sd-nspawn (busctl and our API) and emits MachineNew', async () => {
    const r = busctl(
      bus.address,
      'call',
      'org.freedesktop.machine1',
      '/org/freedesktop/machine1',
      'org.freedesktop.machine1.Manager',
      'ListMachines',
    );
    expect(r.stdout).toContain(`"${name}" "container" "sd-nspawn" "${machineObjectPath(name)}"`);
    const [path] = await manager(client, 'GetMachine', 's', [name]);
    expect(path).toBe(machineObjectPath(name));
    const show = busctl(
      bus.address,
      '--json=short',
      'get-property',
      'org.freedesktop.machine1',
      String(path),
      'org.freedesktop.machine1.Machine',
      'Leader',
      'Unit',
      'RootDirectory',
      'State',
      'Service',
    );
    const props = show.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).data);
    expect(props[0]).toBe(leaderPid);
    expect(props.slice(1)).toEqual([`machine-${name}.scope`, tree.dir, 'running', 'sd-nspawn']);
    expect((await manager(client, 'GetMachineByPID', 'u', [leaderPid]))[0]).toBe(path);
    expect(signals).toContainEqual({ member: 'MachineNew', body: [name, path] });
    expect((await manager(client, 'GetMachineOSRelease', 's', [name]))[0]).toMatchObject({ ID: 'busybox' });
    expect((await manager(client, 'GetMachineAddresses', 's', [name]))[0]).toEqual([]);
    // sd-nspawn's default user namespace: the shift is the leader's uid_map.
    const shift = Number(readFileSync(`/proc/${leaderPid}/uid_map`, 'utf8').trim().split(/\s+/)[1]);
    expect(shift).toBeGreaterThan(0);
    expect((await manager(client, 'GetMachineUIDShift', 's', [name]))[0]).toBe(shift);
  });

  it('OpenMachineShell runs a command in the machine: its hostname and pid namespace', async () => {
    const [fd, ptyPath] = (await manager(client, 'OpenMachineShell', 'sssasas', [
      name,
      'root',
      '/bin/sh',
      ['sh', '-c', 'echo hi $(hostname) $(readlink /proc/self/ns/pid)'],
      [],
    ])) as [number, string];
    try {
      expect(ptyPath).toMatch(/^\/dev\/pts\/\d+$/);
      const out = await readPty(fd);
      expect(out).toContain(`hi ${name} ${readlinkSync(`/proc/${leaderPid}/ns/pid`)}`);
    } finally {
      closeQuietly(fd);
    }
    expect(await errorOf(manager(client, 'OpenMachineShell', 'sssasas', [name, 'root', 'sh', [], []]))).toBe(
      'org.freedesktop.DBus.Error.InvalidArgs',
    );
    expect(await errorOf(manager(client, 'OpenMachineShell', 'sssasas', [name, 'x:y', '', [], []]))).toBe(
      'org.freedesktop.DBus.Error.InvalidArgs',
    );
  });

  it('copies to and from the machine with mode and owner; planted symlinks stay inside', async () => {
    const host = mkdtempSync(join(tmpdir(), 'sd-machined-copy-'));
    try {
      const src = join(host, 'src.txt');
      writeFileSync(src, 'payload\n');
      chmodSync(src, 0o640);
      chownSync(src, 1234, 2345);
      await manager(client, 'CopyToMachine', 'sss', [name, src, '/root/copied.txt']);
      const inside = statSync(join(tree.dir, 'root/copied.txt'));
      expect([inside.mode & 0o7777, inside.uid, inside.gid]).toEqual([0o640, 1234, 2345]);
      await manager(client, 'CopyFromMachine', 'sss', [name, '/root/copied.txt', join(host, 'back.txt')]);
      const back = statSync(join(host, 'back.txt'));
      expect([back.mode & 0o7777, back.uid, back.gid]).toEqual([0o640, 1234, 2345]);
      expect(readFileSync(join(host, 'back.txt'), 'utf8')).toBe('payload\n');
      // Directories round-trip with their links.
      mkdirSync(join(host, 'dir/sub'), { recursive: true });
      writeFileSync(join(host, 'dir/sub/f'), 'x');
      symlinkSync('sub/f', join(host, 'dir/link'));
      await manager(client, 'CopyToMachine', 'sss', [name, join(host, 'dir'), '/root/dir']);
      expect(readlinkSync(join(tree.dir, 'root/dir/link'))).toBe('sub/f');
      await manager(client, 'CopyFromMachine', 'sss', [name, '/root/dir', join(host, 'dir2')]);
      expect(readFileSync(join(host, 'dir2/link'), 'utf8')).toBe('x');

      // Attacks: links to the host's /etc/shadow and out of the root.
      const shadow = readFileSync('/etc/shadow');
      const shadowMtime = statSync('/etc/shadow').mtimeMs;
      symlinkSync('/etc/shadow', join(tree.dir, 'root/leak'));
      symlinkSync('../../..', join(tree.dir, 'root/up'));
      // A link named as the source is copied as a link (systemd's behaviour), never followed.
      await manager(client, 'CopyFromMachine', 'sss', [name, '/root/leak', join(host, 'o1')]);
      expect(readlinkSync(join(host, 'o1'))).toBe('/etc/shadow');
      writeFileSync(join(tree.dir, 'etc/shadow'), 'container shadow\n');
      await manager(client, 'CopyFromMachine', 'sss', [name, '/root/leak', join(host, 'o2')]);
      expect(readlinkSync(join(host, 'o2'))).toBe('/etc/shadow');
      // Links before the last component are followed, inside the machine's root.
      await manager(client, 'CopyFromMachine', 'sss', [name, '/root/up/etc/shadow', join(host, 'o3')]);
      expect(readFileSync(join(host, 'o3'), 'utf8')).toBe('container shadow\n');
      expect(await errorOf(manager(client, 'CopyToMachine', 'sss', [name, src, '/root/leak']))).toBe(
        'org.freedesktop.DBus.Error.FileExists',
      );
      await manager(client, 'CopyToMachineWithFlags', 'ssst', [name, src, '/root/leak', 1n]);
      expect(lstatSync(join(tree.dir, 'root/leak')).isFile()).toBe(true);
      await manager(client, 'CopyToMachineWithFlags', 'ssst', [name, src, '/root/up/../../etc/shadow', 1n]);
      expect(readFileSync(join(tree.dir, 'etc/shadow'), 'utf8')).toBe('payload\n');
      expect(readFileSync('/etc/shadow')).toEqual(shadow);
      expect(statSync('/etc/shadow').mtimeMs).toBe(shadowMtime);
    } finally {
      rmSync(host, { recursive: true, force: true });
    }
  });

  it('bind mounts a host directory into the machine, read-only when asked', async () => {
    const host = mkdtempSync(join(tmpdir(), 'sd-machined-bind-'));
    try {
      writeFileSync(join(host, 'file'), 'bound\n');
      await manager(client, 'BindMountMachine', 'sssbb', [name, host, '/mnt/bound', true, true]);
      const [fd] = (await manager(client, 'OpenMachineShell', 'sssasas', [
        name,
        '',
        '/bin/sh',
        ['sh', '-c', 'cat /mnt/bound/file; touch /mnt/bound/new 2>/dev/null || echo read-only'],
        [],
      ])) as [number];
      try {
        const out = await readPty(fd);
        expect(out).toContain('bound');
        expect(out).toContain('read-only');
      } finally {
        closeQuietly(fd);
      }
    } finally {
      rmSync(host, { recursive: true, force: true });
    }
  });

  it('shifts owners by the UID shift of a machine with its own user namespace', async () => {
    const tree2 = makeTree();
    const n = startNspawn(bus.env, [
      '-D',
      tree2.dir,
      '-M',
      'sduserns',
      '--private-users=1000000:65536',
      '--private-network',
      'sh',
      '-c',
      'trap "exit 0" TERM; while :; do sleep 0.1; done',
    ]);
    containers.push(n);
    await waitFor('sduserns', async () => (await listNames()).includes('sduserns'), 30_000).catch((e) => {
      throw new Error(`${e.message}: ${n.output()}`);
    });
    expect((await manager(client, 'GetMachineUIDShift', 's', ['sduserns']))[0]).toBe(1000000);
    expect((await manager(client, 'MapFromMachineUser', 'su', ['sduserns', 1000]))[0]).toBe(1001000);
    expect(await manager(client, 'MapToMachineUser', 'u', [1001000])).toEqual([
      'sduserns',
      machineObjectPath('sduserns'),
      1000,
    ]);
    const host = mkdtempSync(join(tmpdir(), 'sd-machined-shift-'));
    try {
      const src = join(host, 'f');
      writeFileSync(src, 'shifted\n');
      chmodSync(src, 0o604);
      chownSync(src, 1000, 1000);
      await manager(client, 'CopyToMachine', 'sss', ['sduserns', src, '/root/shifted']);
      // Reachable for the machine's root, which is an unprivileged uid on the host.
      chmodSync(host, 0o755);
      await manager(client, 'BindMountMachine', 'sssbb', ['sduserns', host, '/mnt/b', false, true]);
      // Seen from inside, the file belongs to the same uid the host file had.
      const [fd] = (await manager(client, 'OpenMachineShell', 'sssasas', [
        'sduserns',
        '',
        '/bin/sh',
        ['sh', '-c', 'stat -c "%u:%g %a" /root/shifted; id -u; cat /mnt/b/f'],
        [],
      ])) as [number];
      try {
        const out = await readPty(fd);
        expect(out).toContain('1000:1000 604');
        expect(out).toMatch(/^0\r?$/m);
        expect(out).toContain('shifted');
      } finally {
        closeQuietly(fd);
      }
      await manager(client, 'CopyFromMachine', 'sss', ['sduserns', '/root/shifted', join(host, 'back')]);
      const back = statSync(join(host, 'back'));
      expect([back.uid, back.gid, back.mode & 0o7777]).toEqual([1000, 1000, 0o604]);
    } finally {
      rmSync(host, { recursive: true, force: true });
      await stopNspawn(n);
      tree2.remove();
    }
  });

  it('refuses every mutating method to a caller that is not root', () => {
    const fixture = fileURLToPath(new URL('./fixtures/nonroot-calls.mjs', import.meta.url));
    const r = spawnSync(process.execPath, [fixture, name, machineObjectPath(name)], {
      uid: 65534,
      gid: 65534,
      env: bus.env,
      encoding: 'utf8',
      cwd: '/',
    });
    expect(r.stderr).toBe('');
    const results = JSON.parse(r.stdout) as Record<string, string>;
    const { read, ...mutating } = results;
    expect(read).toBe('ok');
    expect(Object.keys(mutating).length).toBeGreaterThan(30);
    for (const [method, error] of Object.entries(mutating))
      expect([method, error]).toEqual([method, 'org.freedesktop.DBus.Error.AccessDenied']);
  });

  it('kills every process of the machine through its cgroup and drops it', async () => {
    const cg = MachineCgroup.ofProcess(leaderPid)!;
    await waitFor('the background sleep', () => cg.pids().length >= 3);
    const pids = cg.pids();
    await manager(client, 'KillMachine', 'ssi', [name, 'all', 9]);
    await waitFor('MachineRemoved', () =>
      signals.some((s) => s.member === 'MachineRemoved' && s.body[0] === name),
    );
    expect(await listNames()).not.toContain(name);
    await waitFor(
      'sd-nspawn to exit',
      () => nspawn.proc.exitCode !== null || nspawn.proc.signalCode !== null,
    );
    // Gone, or a zombie its parent has not reaped yet: either way no longer running.
    for (const pid of pids)
      await waitFor(
        `pid ${pid} to go`,
        () => !existsSync(`/proc/${pid}/stat`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'),
      );
    for (const d of cg.dirs) expect(existsSync(d)).toBe(false);
  });

  it('stopping the container removes it and emits MachineRemoved', async () => {
    const n2 = startNspawn(bus.env, [
      '-D',
      tree.dir,
      '-M',
      'sdtest2',
      'sh',
      '-c',
      'trap "exit 0" TERM; while :; do sleep 0.1; done',
    ]);
    containers.push(n2);
    await waitFor('sdtest2', async () => (await listNames()).includes('sdtest2'), 30_000);
    expect(await errorOf(manager(client, 'GetMachineAddresses', 's', ['sdtest2']))).toBe(
      'org.freedesktop.machine1.NoPrivateNetworking',
    );
    n2.proc.kill('SIGTERM');
    await waitFor('MachineRemoved', () =>
      signals.some((s) => s.member === 'MachineRemoved' && s.body[0] === 'sdtest2'),
    );
    expect(await listNames()).not.toContain('sdtest2');
  });

  it('terminate reaches processes that ignore SIGTERM; the scope it made is gone afterwards', async () => {
    const p = leader('trap "" TERM; read x; sleep 1000 & sleep 1000 & wait');
    await manager(client, 'CreateMachine', 'sayssusa(sv)', [
      'sdterm',
      Buffer.alloc(16, 1),
      'test',
      'container',
      p.pid,
      '',
      [],
    ]);
    p.stdin?.write('\n');
    const cg = MachineCgroup.ofProcess(p.pid!)!;
    expect(cg.mainPath).toBe('machine.slice/machine-sdterm.scope');
    await waitFor('children in the scope', () => cg.pids().length >= 3);
    const pids = cg.pids();
    await manager(client, 'TerminateMachine', 's', ['sdterm']);
    await waitFor('MachineRemoved', () =>
      signals.some((s) => s.member === 'MachineRemoved' && s.body[0] === 'sdterm'),
    );
    for (const pid of pids)
      await waitFor(
        `pid ${pid} to go`,
        () => !existsSync(`/proc/${pid}/stat`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'),
      );
    for (const d of cg.dirs) expect(existsSync(d)).toBe(false);
  });

  it('keeps running machines over a daemon restart and drops the ones that died', async () => {
    const alive = leader('exec sleep 1000');
    const dead = leader('exec sleep 1000');
    for (const [n, p] of [
      ['sdkeep', alive],
      ['sddead', dead],
    ] as const)
      await manager(client, 'CreateMachine', 'sayssusa(sv)', [n, [], 'test', 'container', p.pid, '', []]);
    const deadCg = MachineCgroup.ofProcess(dead.pid!)!;
    await daemon.stop('SIGKILL');
    dead.kill('SIGKILL');
    await waitFor('the dead leader', () => dead.exitCode !== null || dead.signalCode !== null);
    daemon = await startDaemon(bus.env, root, client);
    const names = await listNames();
    expect(names).toContain('sdkeep');
    expect(names).not.toContain('sddead');
    expect(existsSync(join(root, 'run/systemd/machines/sddead'))).toBe(false);
    for (const d of deadCg.dirs) expect(existsSync(d)).toBe(false);
    const cg = MachineCgroup.ofProcess(alive.pid!)!;
    await manager(client, 'KillMachine', 'ssi', ['sdkeep', 'leader', 9]);
    await waitFor('sdkeep to go', async () => !(await listNames()).includes('sdkeep'));
    for (const d of cg.dirs) expect(existsSync(d)).toBe(false);
  });

  it('refuses bad machine names with clear errors', async () => {
    const p = leader('exec sleep 1000');
    for (const bad of ['', '-x', 'a/b', '../etc', 'a..b', 'x'.repeat(65), '.host', 'ü'])
      expect([
        bad,
        await errorOf(
          manager(client, 'CreateMachine', 'sayssusa(sv)', [bad, [], '', 'container', p.pid, '', []]),
        ),
      ]).toEqual([bad, 'org.freedesktop.DBus.Error.InvalidArgs']);
    expect(await errorOf(manager(client, 'GetMachine', 's', ['../etc']))).toBe(
      'org.freedesktop.machine1.NoSuchMachine',
    );
    expect(
      await errorOf(
        manager(client, 'CreateMachine', 'sayssusa(sv)', ['ok', [1, 2], '', 'container', p.pid, '', []]),
      ),
    ).toBe('org.freedesktop.DBus.Error.InvalidArgs');
    expect(
      await errorOf(
        manager(client, 'CreateMachine', 'sayssusa(sv)', ['ok', [], '', 'toaster', p.pid, '', []]),
      ),
    ).toBe('org.freedesktop.DBus.Error.InvalidArgs');
    expect(await listNames()).toEqual(['.host']);
  });
});

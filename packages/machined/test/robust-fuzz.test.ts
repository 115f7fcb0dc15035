import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeQuietly } from '@sd/sys';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import { imageObjectPath, MACHINE1_PATH, machineObjectPath } from '../src/bus-label.js';
import { dbus, type MessageBus } from '../src/index.js';
import { canRun, connectBus, makeTree, manager, waitFor } from './helpers.js';
import { fdCount, listNames, type RobustDaemon, rssMb, startRobustDaemon } from './robust-lib.js';

// Every method of sd-machined with typed but hostile arguments (issue 10):
// no crash, no hang, every error a D-Bus error name of systemd's families,
// no fd growth. A few thousand calls with a fixed seed in CI;
// SD_ROBUST_FUZZ_CALLS=100000 for the long run.
//
// What the calls may touch is fenced in: machine leaders are only processes
// of ours chrooted into a busybox tree (so a machine's "/" is that tree), or
// pids that must be refused (1, the daemon, the bus); host paths are below
// a scratch directory or invalid; methods that enter a machine or mount
// into it get machines that do not exist, or programs that do not exist.

const skip = canRun();
const CALLS = Number(process.env.SD_ROBUST_FUZZ_CALLS ?? 2000);
const SEED = Number(process.env.SD_ROBUST_FUZZ_SEED ?? 20261203);
const ERROR_NAME = /^(org\.freedesktop\.(DBus\.Error|machine1)\.[A-Za-z]+|System\.Error\.E[A-Z0-9]+)$/;

let bus: PrivateBus;
let client: MessageBus;
let daemon: RobustDaemon;
let root: string;
let scratch: string;
let tree: ReturnType<typeof makeTree>;
const leaders: ChildProcess[] = [];

/** A leader in a chroot of the busybox tree: its machine's root is the tree, never the host. */
function chrootedLeader(): ChildProcess {
  const p = spawn('chroot', [tree.dir, '/bin/sh', '-c', 'exec sleep 100000'], { stdio: 'ignore' });
  leaders.push(p);
  return p;
}

beforeAll(async () => {
  if (skip) return;
  bus = await startPrivateBus();
  root = mkdtempSync(join(tmpdir(), 'sd-robust-fuzz-'));
  scratch = mkdtempSync(join(tmpdir(), 'sd-robust-scratch-'));
  mkdirSync(join(root, 'var/lib/machines/robimg/etc'), { recursive: true });
  writeFileSync(join(root, 'var/lib/machines/robimg/etc/os-release'), 'ID=rob\n');
  writeFileSync(join(scratch, 'file'), 'x');
  client = await connectBus(bus.address);
  daemon = await startRobustDaemon(bus.env, root, client);
  tree = makeTree();
}, 60_000);

afterAll(async () => {
  if (skip) return;
  for (const l of leaders) l.kill('SIGKILL');
  await daemon?.stop();
  client?.disconnect();
  await bus?.stop();
  tree?.remove();
  rmSync(root, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

const hostile = [
  '',
  '.',
  '..',
  '.host',
  '-',
  'a/b',
  '../../etc',
  'x'.repeat(300),
  'ü',
  ' ',
  '\n',
  'robfuzz',
  'robf1',
  'robimg',
  'robimg2',
  '%',
  '*',
  'machine-robfuzz.scope',
];

/** Arbitraries by what an argument means. */
function kinds(pids: { daemon: number; bus: number; ours: () => number }) {
  const str = fc.oneof(
    fc.constantFrom(...hostile),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 8 }),
  );
  const name = fc.oneof(fc.constantFrom(...hostile), str);
  const inPath = fc.oneof(
    fc.constantFrom(
      '/',
      '',
      '/etc/os-release',
      '/bin',
      '/root/x',
      '/root/',
      '/proc/self',
      '/../../etc/passwd',
      'rel',
    ),
    str.map((s) => `/root/${s}`),
    str,
  );
  const hostPath = fc.oneof(
    fc.constantFrom('/', '', 'relative', '/proc/self/fd/0', '/nonexistent/x'),
    fc.constantFrom('file', 'newdir', 'sub/x', '..', '.').map((s) => `${scratch}/${s}`),
    str.filter((s) => !s.includes('/') && s !== '..' && s !== '.').map((s) => `${scratch}/${s}`),
  );
  const u32 = fc.oneof(fc.constantFrom(0, 1, 65534, 0xffffffff, 1000000), fc.nat({ max: 0xffffffff }));
  const i32 = fc.oneof(fc.constantFrom(0, -1, 9, 15, 64, 65, 0x7fffffff, -0x80000000), fc.integer());
  const u64 = fc.oneof(
    fc.constantFrom(0n, 1n, 2n ** 64n - 1n, 2n ** 63n),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  );
  // Leaders: ours (chrooted) or pids that must be refused; never 0 (the caller: this test) nor a stranger.
  const leader = fc.oneof(
    fc.constantFrom(1, pids.daemon, pids.bus, 4_000_000, 0xffffffff),
    fc.constant(-1).map(() => pids.ours()),
  );
  return {
    s: str,
    name,
    inPath,
    hostPath,
    u: u32,
    i: i32,
    t: u64,
    b: fc.boolean(),
    ay: fc
      .oneof(
        fc.constantFrom([], new Array(16).fill(7)),
        fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 20 }),
      )
      .map((a) => Buffer.from(a)),
    as: fc.array(str, { maxLength: 4 }),
    ai: fc.array(i32, { maxLength: 3 }),
    props: fc.array(
      fc
        .tuple(fc.constantFrom('Description', 'CPUShares', 'DeviceAllow', 'x', ''), str)
        .map(([k, v]) => [k, new dbus.Variant('s', v)]),
      { maxLength: 2 },
    ),
    cls: fc.constantFrom('', 'container', 'vm', 'host', 'bogus'),
    leader,
    who: fc.constantFrom('', 'leader', 'all', 'bogus'),
    mode: fc.constantFrom('all', 'hidden', '', 'bogus'),
    // Programs that do not exist: a machine is entered, nothing is run.
    prog: fc.constantFrom('/nonexistent', '/nonexistent/sh', ''),
    // Machines that cannot be entered: absent, the host (refused), bad names.
    absent: fc.constantFrom('robnone', '.host', '', '../x', 'x'.repeat(70)),
  };
}

type Kind = keyof ReturnType<typeof kinds>;
interface Method {
  path: (a: unknown[]) => string;
  iface: string;
  member: string;
  sig: string;
  args: Kind[];
  /** Leading generated arguments that name the object rather than go in the body. */
  drop?: number;
}

const M = 'org.freedesktop.machine1.Manager';
const MO = 'org.freedesktop.machine1.Machine';
const IO = 'org.freedesktop.machine1.Image';
const mgr = (member: string, sig: string, args: Kind[]): Method => ({
  path: () => MACHINE1_PATH,
  iface: M,
  member,
  sig,
  args,
});
// Object methods: the first generated argument names the object, the rest are the method's.
const obj = (iface: string, member: string, sig: string, args: Kind[], first: Kind = 'name'): Method => ({
  path: (a) => (iface === IO ? imageObjectPath(String(a[0])) : machineObjectPath(String(a[0]))),
  iface,
  member,
  sig,
  args: [first, ...args],
  drop: 1,
});

const METHODS: Method[] = [
  mgr('GetMachine', 's', ['name']),
  mgr('GetImage', 's', ['name']),
  mgr('GetMachineByPID', 'u', ['u']),
  mgr('ListMachines', '', []),
  mgr('ListImages', '', []),
  mgr('CreateMachine', 'sayssusa(sv)', ['name', 'ay', 's', 'cls', 'leader', 'inPath', 'props']),
  mgr('CreateMachineWithNetwork', 'sayssusaia(sv)', [
    'name',
    'ay',
    's',
    'cls',
    'leader',
    'inPath',
    'ai',
    'props',
  ]),
  mgr('RegisterMachine', 'sayssus', ['name', 'ay', 's', 'cls', 'leader', 'inPath']),
  mgr('RegisterMachineWithNetwork', 'sayssusai', ['name', 'ay', 's', 'cls', 'leader', 'inPath', 'ai']),
  mgr('UnregisterMachine', 's', ['name']),
  mgr('TerminateMachine', 's', ['name']),
  mgr('KillMachine', 'ssi', ['name', 'who', 'i']),
  mgr('GetMachineAddresses', 's', ['name']),
  mgr('GetMachineOSRelease', 's', ['name']),
  mgr('OpenMachinePTY', 's', ['absent']),
  mgr('OpenMachineLogin', 's', ['absent']),
  mgr('OpenMachineShell', 'sssasas', ['name', 's', 'prog', 'as', 'as']),
  mgr('BindMountMachine', 'sssbb', ['absent', 'hostPath', 'inPath', 'b', 'b']),
  mgr('CopyFromMachine', 'sss', ['name', 'inPath', 'hostPath']),
  mgr('CopyToMachine', 'sss', ['name', 'hostPath', 'inPath']),
  mgr('CopyFromMachineWithFlags', 'ssst', ['name', 'inPath', 'hostPath', 't']),
  mgr('CopyToMachineWithFlags', 'ssst', ['name', 'hostPath', 'inPath', 't']),
  mgr('OpenMachineRootDirectory', 's', ['name']),
  mgr('GetMachineUIDShift', 's', ['name']),
  mgr('RemoveImage', 's', ['name']),
  mgr('RenameImage', 'ss', ['name', 'name']),
  mgr('CloneImage', 'ssb', ['name', 'name', 'b']),
  mgr('MarkImageReadOnly', 'sb', ['name', 'b']),
  mgr('GetImageHostname', 's', ['name']),
  mgr('GetImageMachineID', 's', ['name']),
  mgr('GetImageMachineInfo', 's', ['name']),
  mgr('GetImageOSRelease', 's', ['name']),
  mgr('SetPoolLimit', 't', ['t']),
  mgr('SetImageLimit', 'st', ['name', 't']),
  mgr('CleanPool', 's', ['mode']),
  mgr('MapFromMachineUser', 'su', ['name', 'u']),
  mgr('MapToMachineUser', 'u', ['u']),
  mgr('MapFromMachineGroup', 'su', ['name', 'u']),
  mgr('MapToMachineGroup', 'u', ['u']),
  {
    path: () => MACHINE1_PATH,
    iface: 'io.sd.machine1.Runner',
    member: 'StartMachine',
    sig: 's',
    args: ['name'],
  },
  obj(MO, 'Terminate', '', []),
  obj(MO, 'Kill', 'si', ['who', 'i']),
  obj(MO, 'GetAddresses', '', []),
  obj(MO, 'GetOSRelease', '', []),
  obj(MO, 'GetUIDShift', '', []),
  obj(MO, 'OpenPTY', '', [], 'absent'),
  obj(MO, 'OpenLogin', '', [], 'absent'),
  obj(MO, 'OpenShell', 'ssasas', ['s', 'prog', 'as', 'as']),
  obj(MO, 'BindMount', 'ssbb', ['hostPath', 'inPath', 'b', 'b'], 'absent'),
  obj(MO, 'CopyFrom', 'ss', ['inPath', 'hostPath']),
  obj(MO, 'CopyTo', 'ss', ['hostPath', 'inPath']),
  obj(MO, 'CopyFromWithFlags', 'sst', ['inPath', 'hostPath', 't']),
  obj(MO, 'CopyToWithFlags', 'sst', ['hostPath', 'inPath', 't']),
  obj(MO, 'OpenRootDirectory', '', []),
  obj(IO, 'Remove', '', []),
  obj(IO, 'Rename', 's', ['name']),
  obj(IO, 'Clone', 'sb', ['name', 'b']),
  obj(IO, 'MarkReadOnly', 'b', ['b']),
  obj(IO, 'SetLimit', 't', ['t']),
  obj(IO, 'GetHostname', '', []),
  obj(IO, 'GetMachineID', '', []),
  obj(IO, 'GetMachineInfo', '', []),
  obj(IO, 'GetOSRelease', '', []),
  {
    path: (a) => machineObjectPath(String(a[0])),
    iface: 'org.freedesktop.DBus.Properties',
    member: 'GetAll',
    sig: 's',
    args: ['name', 's'],
    drop: 1,
  },
  {
    path: () => MACHINE1_PATH,
    iface: 'org.freedesktop.DBus.Properties',
    member: 'Get',
    sig: 'ss',
    args: ['s', 's'],
  },
];

async function call(m: Method, a: unknown[]): Promise<{ error?: string; timedOut?: boolean }> {
  const body = a.slice(m.drop ?? 0);
  const msg = new dbus.Message({
    destination: 'org.freedesktop.machine1',
    path: m.path(a),
    interface: m.iface,
    member: m.member,
    signature: m.sig,
    body,
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), 20_000);
  });
  try {
    const r = await Promise.race([client.call(msg), timeout]);
    if (r === 'timeout') return { timedOut: true };
    // Close what came back as fds (h in the reply).
    if (r?.signature?.startsWith('h')) closeQuietly(Number(r.body[0]));
    return {};
  } catch (e) {
    return { error: (e as { type?: string }).type ?? `not a D-Bus error: ${String(e)}` };
  } finally {
    clearTimeout(timer);
  }
}

describe.skipIf(skip)('sd-machined under fuzzed calls', () => {
  it(
    `survives ${CALLS} typed, hostile calls of every method (seed ${SEED})`,
    async () => {
      const pool: ChildProcess[] = [];
      for (let i = 0; i < 6; i++) pool.push(chrootedLeader());
      await waitFor('the leaders', () => pool.every((p) => p.pid !== undefined));
      await sleep(200);
      // One machine to copy to and from, whose "/" is the busybox tree.
      await manager(client, 'CreateMachine', 'sayssusa(sv)', [
        'robfuzz',
        [],
        'fuzz',
        'container',
        pool[0]!.pid,
        '',
        [],
      ]);
      let next = 1;
      const k = kinds({
        daemon: daemon.pid,
        bus: bus.pid,
        ours: () => pool[next++ % pool.length]!.pid!,
      });
      const gen = fc.oneof(
        ...METHODS.map((m) =>
          fc.tuple(fc.constant(m), fc.tuple(...(m.args.map((a) => k[a]) as [fc.Arbitrary<unknown>]))),
        ),
      );
      const samples = fc.sample(gen, { numRuns: CALLS, seed: SEED });
      const fdsBefore = fdCount(daemon.pid);
      const rssBefore = rssMb(daemon.pid);
      const errors = new Map<string, number>();
      const bad: string[] = [];
      let done = 0;
      const t0 = Date.now();
      for (const [m, a] of samples) {
        const r = await call(m, a);
        done++;
        if (r.timedOut) bad.push(`${m.member}(${JSON.stringify(a)}) hung`);
        if (r.error) {
          errors.set(r.error, (errors.get(r.error) ?? 0) + 1);
          if (process.env.SD_ROBUST_FUZZ_TRACE === r.error)
            console.log(
              m.member,
              JSON.stringify(a, (_, x) => (typeof x === 'bigint' ? String(x) : x)),
            );
          if (!ERROR_NAME.test(r.error)) bad.push(`${m.member}: ${r.error}`);
        }
        if (daemon.proc.exitCode !== null || daemon.proc.signalCode !== null) {
          bad.push(`daemon died after ${m.member}(${JSON.stringify(a)}): ${daemon.log().slice(-2000)}`);
          break;
        }
        if (bad.length > 10) break;
        if (done % 10_000 === 0)
          console.log(
            `fuzz progress: ${done} calls, ${((Date.now() - t0) / 1000).toFixed(0)} s, fds ${fdCount(daemon.pid)}, RSS ${rssMb(daemon.pid)} MB`,
          );
        // Replace leaders that a Kill or Terminate ended.
        for (let i = 0; i < pool.length; i++)
          if (pool[i]!.exitCode !== null || pool[i]!.signalCode !== null) pool[i] = chrootedLeader();
      }
      expect(bad).toEqual([]);
      // The machines the fuzzer made go; the daemon is back where it started.
      for (const n of await listNames(client))
        if (n !== '.host') await manager(client, 'TerminateMachine', 's', [n]).catch(() => undefined);
      await waitFor('the fuzzed machines to go', async () => (await listNames(client)).length === 1, 30_000);
      await sleep(1000);
      const fdsAfter = fdCount(daemon.pid);
      console.log(
        `fuzz: ${done} calls in ${((Date.now() - t0) / 1000).toFixed(1)} s; fds ${fdsBefore} → ${fdsAfter}; RSS ${rssBefore} → ${rssMb(daemon.pid)} MB; errors ${JSON.stringify(Object.fromEntries([...errors].sort((x, y) => y[1] - x[1])))}`,
      );
      expect(fdsAfter).toBeLessThanOrEqual(fdsBefore + 2);
      expect(daemon.log()).not.toMatch(/TypeError|RangeError|ReferenceError|at file:/);
    },
    Math.max(1_800_000, CALLS * 200),
  );
});

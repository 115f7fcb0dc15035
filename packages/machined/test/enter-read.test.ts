import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import { dbus, type MessageBus } from '../src/index.js';
import {
  canRun,
  connectBus,
  type Daemon,
  makeTree,
  manager,
  startDaemon,
  startNspawn,
  stopNspawn,
  waitFor,
} from './helpers.js';

// Item 10 of the review: sd-machined makes every system call on one
// thread, so a FIFO or a FUSE file inside a machine must not hang it.
// A FIFO at os-release gets a clear error at once; a FUSE file system
// that never answers (mounted at the machine's /etc, its server never
// reads /dev/fuse) gets a timeout error, and the daemon answers other
// calls meanwhile.

const skip = canRun();
let bus: PrivateBus;
let client: MessageBus;
let daemon: Daemon;
let root: string;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  if (skip) return;
  bus = await startPrivateBus();
  root = mkdtempSync(join(tmpdir(), 'sd-enter-root-'));
  client = await connectBus(bus.address);
  daemon = await startDaemon(bus.env, root, client);
}, 60_000);

afterAll(async () => {
  if (skip) return;
  for (const c of cleanup.reverse()) await c();
  await daemon?.stop();
  client?.disconnect();
  await bus?.stop();
  rmSync(root, { recursive: true, force: true });
}, 60_000);

const MACHINECTL = fileURLToPath(new URL('../src/machinectl.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url));

function machinectl(...args: string[]) {
  return spawnSync(
    process.execPath,
    ['--conditions=sd-source', '--import', TSX, MACHINECTL, '--no-pager', ...args],
    {
      env: { ...bus.env, NO_COLOR: '1', COLUMNS: '200' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    },
  );
}

const names = async () => ((await manager(client, 'ListMachines'))[0] as unknown[][]).map((r) => r[0]);

async function timed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; error?: string }> {
  const t0 = performance.now();
  try {
    const value = await p;
    return { ms: performance.now() - t0, value };
  } catch (e) {
    return { ms: performance.now() - t0, error: `${(e as { type?: string }).type}: ${(e as Error).message}` };
  }
}

async function leaderOf(name: string): Promise<number> {
  const [path] = await manager(client, 'GetMachine', 's', [name]);
  const r = await client.call(
    new dbus.Message({
      destination: 'org.freedesktop.machine1',
      path: String(path),
      interface: 'org.freedesktop.DBus.Properties',
      member: 'Get',
      signature: 'ss',
      body: ['org.freedesktop.machine1.Machine', 'Leader'],
    }),
  );
  return Number((r?.body[0] as { value: unknown } | undefined)?.value);
}

for (const userns of [false, true]) {
  const name = userns ? 'enter-readu' : 'enter-read';
  describe.skipIf(skip)(`reads inside ${name}${userns ? ' (-U)' : ''}`, () => {
    let tree: ReturnType<typeof makeTree>;

    beforeAll(async () => {
      tree = makeTree();
      cleanup.push(() => tree.remove());
      mkdirSync(join(tree.dir, 'usr/lib'), { recursive: true });
      const n = startNspawn(bus.env, [
        '-D',
        tree.dir,
        '-M',
        name,
        ...(userns ? ['-U'] : []),
        '--private-network',
        'sh',
        '-c',
        'trap "exit 0" TERM; while :; do sleep 0.1; done',
      ]);
      cleanup.push(() => stopNspawn(n));
      await waitFor(name, async () => (await names()).includes(name), 60_000).catch((e) => {
        throw new Error(`${(e as Error).message}: ${n.output()}`);
      });
    }, 90_000);

    it('a FIFO at /etc/os-release and /usr/lib/os-release: a clear error within 1 s, and the list answers', async () => {
      for (const p of ['etc/os-release', 'usr/lib/os-release']) {
        rmSync(join(tree.dir, p), { force: true });
        expect(spawnSync('mkfifo', ['-m', '0644', join(tree.dir, p)]).status).toBe(0);
      }
      try {
        const os = await timed(manager(client, 'GetMachineOSRelease', 's', [name]));
        expect(os.error).toMatch(/\/etc\/os-release in the machine is not a regular file/);
        expect(os.ms).toBeLessThan(1000);
        const list = await timed(names());
        expect(list.value).toContain(name);
        expect(list.ms).toBeLessThan(1000);
      } finally {
        for (const p of ['etc/os-release', 'usr/lib/os-release']) unlinkSync(join(tree.dir, p));
        writeFileSync(join(tree.dir, 'etc/os-release'), 'ID=busybox\n');
      }
    });

    it('a FUSE file system that never answers at /etc: a timeout error within 1 s, and the daemon answers meanwhile', async () => {
      const leader = await leaderOf(name);
      // The server's end: held open and never read, so every request waits.
      const fuse = openSync('/dev/fuse', 'r+');
      let open = true;
      const abort = () => {
        if (open) closeSync(fuse);
        open = false;
      };
      // A daemon that blocks on the file system (as sd-machined did) is set
      // free after 20 s, so that the test fails instead of hanging.
      const guard = setTimeout(abort, 20_000);
      let mounted = false;
      try {
        const m = spawnSync(
          'nsenter',
          [
            '-t',
            String(leader),
            '-m',
            'mount',
            '-i',
            '-t',
            'fuse',
            '-o',
            'fd=3,rootmode=40000,user_id=0,group_id=0,allow_other',
            'sd-enter-stall',
            '/etc',
          ],
          { stdio: ['ignore', 'pipe', 'pipe', fuse], encoding: 'utf8' },
        );
        expect(m.status, m.stderr).toBe(0);
        mounted = true;
        const os = timed(manager(client, 'GetMachineOSRelease', 's', [name]));
        await new Promise((r) => setTimeout(r, 100));
        const list = await timed(names());
        expect(list.value).toContain(name);
        expect(list.ms).toBeLessThan(1000);
        const r = await os;
        expect(r.error).toMatch(/Reading \/etc\/os-release in the machine did not finish within/);
        expect(r.ms).toBeLessThan(1000);
        // The shell's user lookup reads /etc/passwd the same way.
        const sh = await timed(
          manager(client, 'OpenMachineShell', 'sssasas', [name, 'root', '/bin/sh', ['sh', '-c', 'true'], []]),
        );
        expect(sh.error).toMatch(/\/etc\/passwd/);
        expect(sh.ms).toBeLessThan(1000);
        // So does OpenMachinePTY's open of the machine's ptmx.
        const pts = spawnSync(
          'nsenter',
          [
            '-t',
            String(leader),
            '-m',
            'mount',
            '-i',
            '-t',
            'fuse',
            '-o',
            'fd=3,rootmode=40000,user_id=0,group_id=0',
            'sd-enter-stall',
            '/dev/pts',
          ],
          { stdio: ['ignore', 'pipe', 'pipe', fuse], encoding: 'utf8' },
        );
        expect(pts.status, pts.stderr).toBe(0);
        const pty = await timed(manager(client, 'OpenMachinePTY', 's', [name]));
        expect(pty.error).toMatch(/Opening \/dev\/pts\/ptmx in the machine did not finish within/);
        expect(pty.ms).toBeLessThan(1000);
        // BindMountMachine resolves its target inside the machine the same way.
        const bind = await timed(
          manager(client, 'BindMountMachine', 'sssbb', [name, root, '/etc/x', false, true]),
        );
        expect(bind.error).toMatch(/Bind mounting onto \/etc\/x in the machine did not finish within/);
        expect(bind.ms).toBeLessThan(3000);
        // Our machinectl list (it asks for each machine's os-release) still lists it.
        const t0 = performance.now();
        const ctl = machinectl('list');
        const ctlMs = performance.now() - t0;
        expect(ctl.status, ctl.stderr).toBe(0);
        expect(ctl.stdout).toMatch(new RegExp(`^${name}\\s+container`, 'm'));
        console.log(`machinectl list with a stalled /etc: ${ctlMs.toFixed(0)} ms (the CLI's start included)`);
      } finally {
        // Closing the server's end aborts the connection: whatever waits on it fails.
        clearTimeout(guard);
        abort();
        if (mounted) spawnSync('nsenter', ['-t', String(leader), '-m', 'umount', '-l', '/etc', '/dev/pts']);
      }
      // Once the file system is gone, the same call works again.
      expect((await manager(client, 'GetMachineOSRelease', 's', [name]))[0]).toEqual({ ID: 'busybox' });
    });
  });
}

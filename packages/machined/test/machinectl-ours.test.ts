import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRun, type MachineFixture, startMachineFixture, waitFor } from './helpers.js';

// Our machinectl against sd-machined on a private bus, with a container
// started by sd-nspawn: the verbs a user runs, output shaped like systemd's.

const MACHINECTL = fileURLToPath(new URL('../src/machinectl.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url));
const skip = canRun();
let fx: MachineFixture | undefined;
let bus: MachineFixture['bus'];
let root: string;
let tree: MachineFixture['tree'];
let nspawn: MachineFixture['nspawn'];
const name = 'oursctl';

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

beforeAll(async () => {
  if (skip) return;
  fx = await startMachineFixture(name);
  ({ bus, root, tree, nspawn } = fx);
}, 120_000);

afterAll(async () => {
  await fx?.stop();
});

describe.skipIf(skip)('our machinectl against sd-machined', () => {
  it('list, --json and --no-legend', () => {
    const r = machinectl('list');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^MACHINE\s+CLASS\s+SERVICE/m);
    expect(r.stdout).toMatch(new RegExp(`^${name}\\s+container\\s+sd-nspawn`, 'm'));
    expect(r.stdout).toContain('1 machines listed.');
    const legendless = machinectl('list', '--no-legend');
    expect(legendless.stdout).not.toMatch(/MACHINE|listed/);
    const json = JSON.parse(machinectl('list', '--json=short').stdout) as Array<{ machine: string }>;
    expect(json.map((m) => m.machine)).toContain(name);
  });

  it('status and show', () => {
    const st = machinectl('status', name);
    expect(st.status, st.stderr).toBe(0);
    expect(st.stdout).toContain(name);
    expect(st.stdout).toContain(`Root: ${tree.dir}`);
    expect(machinectl('show', name, '-p', 'State', '--value').stdout.trim()).toBe('running');
  });

  it('shell runs a command with the machine’s hostname, in its pid namespace', () => {
    const r = machinectl('shell', name, '/bin/sh', '-c', 'echo hi $(hostname) $(readlink /proc/self/ns/pid)');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`hi ${name} pid:`));
    // The container's PID namespace (the payload's pids grow with its sleep loop: compare namespaces).
    const leader = machinectl('show', name, '-p', 'Leader', '--value').stdout.trim();
    expect(r.stdout).toContain(readlinkSync(`/proc/${leader}/ns/pid`));
  });

  it('copy-to and copy-from round-trip a file with mode and owner', () => {
    const src = join(root, 'to-copy');
    writeFileSync(src, 'payload\n', { mode: 0o640 });
    let r = machinectl('copy-to', name, src, '/tmp/copied');
    expect(r.status, r.stderr).toBe(0);
    const back = join(root, 'copied-back');
    r = machinectl('copy-from', name, '/tmp/copied', back);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(back, 'utf8')).toBe('payload\n');
    expect(statSync(back).mode & 0o777).toBe(0o640);
    expect(statSync(back).uid).toBe(0);
  });

  it('list-images, clone, rename, read-only, remove', () => {
    expect(machinectl('list-images').stdout).toMatch(/^img1\s+directory/m);
    expect(machinectl('clone', 'img1', 'img2').status).toBe(0);
    expect(machinectl('rename', 'img2', 'img3').status).toBe(0);
    expect(machinectl('read-only', 'img3').status).toBe(0);
    expect(machinectl('show-image', 'img3', '-p', 'ReadOnly', '--value').stdout.trim()).toBe('yes');
    expect(machinectl('read-only', 'img3', 'false').status).toBe(0);
    expect(machinectl('remove', 'img3').status).toBe(0);
    expect(machinectl('list-images').stdout).not.toMatch(/^img3/m);
    const bad = machinectl('clone', 'img1', 'bad/name');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/bad\/name/);
  });

  it('start boots an image of the pool through the daemon (sd-nspawn as its child)', async () => {
    const image = join(root, 'var/lib/machines/bbboot');
    cpSync(tree.dir, image, { recursive: true, verbatimSymlinks: true });
    mkdirSync(join(image, 'sbin'), { recursive: true });
    symlinkSync('../bin/busybox', join(image, 'sbin/init'));
    writeFileSync(join(image, 'etc/inittab'), '::respawn:/bin/sleep 3600\n');
    const r = machinectl('start', 'bbboot');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/Note:/);
    const listed = () => machinectl('list', '--no-legend').stdout;
    await waitFor('bbboot to register', () => /^bbboot\s+container\s+sd-nspawn/m.test(listed()), 30_000);
    // busybox init powers off on SIGUSR2.
    expect(machinectl('kill', 'bbboot', '--kill-whom=leader', '-s', 'SIGUSR2').status).toBe(0);
    await waitFor('bbboot to go', () => !/^bbboot\s/m.test(listed()), 30_000);
  });

  it('terminate, and a clear error for an unknown machine', async () => {
    const r = machinectl('terminate', name);
    expect(r.status, r.stderr).toBe(0);
    await waitFor(
      'sd-nspawn to exit',
      () => nspawn.proc.exitCode !== null || nspawn.proc.signalCode !== null,
    );
    const bad = machinectl('status', 'no-such-machine');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/no-such-machine/);
  });
});

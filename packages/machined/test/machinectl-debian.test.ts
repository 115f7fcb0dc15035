import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerOrSkip } from '../../../tools/test/require.js';
import { canRun, type MachineFixture, startMachineFixture, waitFor } from './helpers.js';

// systemd's own machinectl (Debian's systemd-container) against sd-machined
// on a private bus. It refuses to run unless /run/systemd/system exists, so
// it runs in a private mount namespace with a tmpfs on /run/systemd.

const skip =
  canRun() ??
  peerOrSkip(
    existsSync('/usr/bin/machinectl') ? undefined : 'machinectl (systemd-container) is not installed',
  );
let fx: MachineFixture | undefined;
let bus: MachineFixture['bus'];
let root: string;
let tree: MachineFixture['tree'];
let nspawn: MachineFixture['nspawn'];
const name = 'sdmctl';

function machinectl(...args: string[]) {
  const script =
    'mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec /usr/bin/machinectl --no-pager "$@"';
  return spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...args], {
    env: { ...bus.env, SYSTEMD_COLORS: '0', COLUMNS: '200' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 30_000,
  });
}

beforeAll(async () => {
  if (skip) return;
  fx = await startMachineFixture(name);
  ({ bus, root, tree, nspawn } = fx);
}, 120_000);

afterAll(async () => {
  await fx?.stop();
});

describe.skipIf(skip)("Debian's machinectl against sd-machined", () => {
  it('list', () => {
    const r = machinectl('list');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${name}\\s+container\\s+sd-nspawn\\s+busybox\\s+1\\s+-`, 'm'));
    expect(r.stdout).toContain('1 machines listed.');
    expect(r.stdout).not.toContain('.host');
    expect(machinectl('list', '-a').stdout).toMatch(/^\.host\s+host/m);
  });

  it('status', () => {
    const r = machinectl('status', name);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(name);
    expect(r.stdout).toMatch(/Leader: \d+ \(sh\)/);
    expect(r.stdout).toMatch(/Service: sd-nspawn; class container/);
    expect(r.stdout).toContain(`Root: ${tree.dir}`);
    expect(r.stdout, r.stdout).toContain('OS: BusyBox test tree');
    expect(r.stdout).toContain(`Unit: machine-${name}.scope`);
  });

  it('show', () => {
    const r = machinectl('show', name);
    expect(r.status, r.stderr).toBe(0);
    for (const line of [
      `Name=${name}`,
      'Class=container',
      'Service=sd-nspawn',
      'State=running',
      `RootDirectory=${tree.dir}`,
    ])
      expect(r.stdout).toContain(line);
    expect(machinectl('show', name, '-p', 'Leader', '--value').stdout.trim()).toMatch(/^\d+$/);
  });

  it('shell', () => {
    const r = machinectl('shell', name, '/bin/sh', '-c', 'echo hi $(hostname)');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain(`hi ${name}`);
  });

  it('list-images and show-image (the pool behind the bus)', () => {
    const list = machinectl('list-images');
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^img1\s+directory\s+no/m);
    const show = machinectl('show-image', 'img1');
    expect(show.status, show.stderr).toBe(0);
    for (const line of [
      'Name=img1',
      `Path=${join(root, 'var/lib/machines/img1')}`,
      'Type=directory',
      'ReadOnly=no',
    ])
      expect(show.stdout).toContain(line);
  });

  it('terminate', async () => {
    const r = machinectl('terminate', name);
    expect(r.status, r.stderr).toBe(0);
    await waitFor(
      'sd-nspawn to exit',
      () => nspawn.proc.exitCode !== null || nspawn.proc.signalCode !== null,
    );
    expect(machinectl('list').stdout).toMatch(/No machines\.|0 machines listed\./);
    const bad = machinectl('status', 'no-such-machine');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain("No machine 'no-such-machine' known");
  });
});

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRun, type MachineFixture, startMachineFixture } from './helpers.js';

// machinectl as it is installed: the built bin (dist/machinectl.cjs, the
// code-cache launcher of the CJS bundle) against sd-machined on a private
// bus. list and show go through @sd/basic's small D-Bus client; shell gets
// a pty fd through dbus-next and the pty forwarder, a bundle of its own
// that only login and shell load. The bundle must load neither koffi nor
// dbus-next for list.

const pkg = fileURLToPath(new URL('..', import.meta.url));
const bin = join(
  pkg,
  (JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin
    .machinectl!,
);
const skip = canRun() ?? (existsSync(bin) ? undefined : `${bin} is not built`);
const name = 'start-bin';
let fx: MachineFixture | undefined;

/** Runs the built bin against the fixture's bus. */
function machinectl(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [bin, '--no-pager', ...args], {
    env: { ...fx!.bus.env, NO_COLOR: '1', COLUMNS: '200', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

beforeAll(async () => {
  if (skip) return;
  fx = await startMachineFixture(name);
}, 120_000);

afterAll(async () => {
  await fx?.stop();
});

describe.skipIf(skip)('the built machinectl', () => {
  it('lists and shows through the small client, loading neither koffi nor dbus-next', () => {
    const hook = fileURLToPath(new URL('./fixtures/trace-require.cjs', import.meta.url));
    const r = machinectl(['list'], { NODE_OPTIONS: `--require=${hook}` });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${name}\\s+container\\s+sd-nspawn`, 'm'));
    const loaded = r.stderr.split('\n').filter((l) => l.startsWith('require '));
    expect(loaded.length).toBeGreaterThan(0);
    expect(loaded.filter((l) => /koffi|dbus-next/.test(l))).toEqual([]);
    const show = machinectl(['show', name, '-p', 'State', '--value']);
    expect(show.stdout.trim()).toBe('running');
  });

  it('runs shell through dbus-next and the pty bundle', () => {
    const r = machinectl(['shell', name, '/bin/sh', '-c', 'echo hi $(hostname)']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`hi ${name}`);
  });

  it('says why when the machine is not there, in one line', () => {
    const r = machinectl(['status', 'start-bin-nonexistent']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/start-bin-nonexistent/);
  });
});

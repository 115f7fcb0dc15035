import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Container, parseArgv, runContainer } from '@sd/nspawn';
import { detectCgroups } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Boots a Debian bookworm tree with systemd (built once by
// tools/debian-tree/build.sh and cached) to multi-user.target and shuts it
// down again: from outside through Container.stop() (SIGRTMIN+3 to init, as
// on SIGTERM), and from inside (poweroff.target). The tree is used with
// --volatile=state (read-only, /var on a tmpfs) so the cache stays pristine.

const root = process.getuid?.() === 0;
const BUILD = fileURLToPath(new URL('../tools/debian-tree/build.sh', import.meta.url));

let tree = '';
let runtimeDir = '';

beforeAll(() => {
  if (!root) return;
  tree = execFileSync(BUILD, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 20 * 60_000,
  }).trim();
  runtimeDir = mkdtempSync('/run/sd-test-boot.');
  // A container root with shifted ids must reach what is assembled on it.
  chmodSync(runtimeDir, 0o755);
}, 20 * 60_000);

afterAll(() => {
  if (runtimeDir) rmSync(runtimeDir, { recursive: true, force: true });
});

/** Runs a command in the guest's namespaces (a test-only peer; sd-nspawn's own "run in container" comes later). */
function inGuest(pid: number, ...cmd: string[]): string {
  try {
    return execFileSync('nsenter', ['-t', String(pid), '-a', ...cmd], { encoding: 'utf8' }).trim();
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return `${err.stdout ?? ''}${err.stderr ?? ''}`.trim();
  }
}

function scopeDirs(machine: string): string[] {
  const layout = detectCgroups();
  const name = `machine-${machine.replace(/-/g, '\\x2d')}.scope`;
  const roots = [layout.unifiedRoot, ...layout.hierarchies.map((h) => h.mountPoint)].filter(
    (r): r is string => r !== undefined,
  );
  // Our own cgroup may be nested (a supervisor's): look below it as well as at the root.
  const own = readFileSync('/proc/self/cgroup', 'utf8');
  const bases = new Set(['', ...own.split('\n').map((l) => l.split(':')[2] ?? '')]);
  return roots.flatMap((r) => [...bases].map((b) => `${r}${b}/machine.slice/${name}`.replace(/\/+/g, '/')));
}

function assertNothingLeft(machine: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(runtimeDir));
  expect(mounts).toEqual([]);
  expect(scopeDirs(machine).filter((d) => existsSync(d))).toEqual([]);
}

function settingsFor(machine: string, ...extra: string[]) {
  const { settings } = parseArgv([
    '-b',
    '-D',
    tree,
    '-M',
    machine,
    '--console=pipe',
    '--volatile=state',
    '--notify-ready=yes',
    ...extra,
  ]);
  return settings;
}

describe.skipIf(!root)('booting a Debian tree with systemd (needs root)', () => {
  it('reaches multi-user.target, reports READY=1, and stops cleanly via Container.stop()', async () => {
    const machine = `sdboot-stop-${process.pid}`;
    const events: string[] = [];
    let checks: { target: string; state: string; failed: string } | undefined;
    const t0 = performance.now();
    let readyMs = 0;
    const status = await runContainer(settingsFor(machine), {
      runtimeDir,
      onContainer: (c: Container) => {
        c.on('ready', () => events.push('ready'));
        c.on('status', (s) => events.push(`status:${s}`));
        c.whenReady().then(
          () => {
            readyMs = performance.now() - t0;
            const pid = c.pid!;
            checks = {
              target: inGuest(pid, 'systemctl', 'is-active', 'multi-user.target'),
              state: inGuest(pid, 'systemctl', 'is-system-running'),
              failed: inGuest(pid, 'systemctl', '--failed', '--plain', '--no-legend'),
            };
            c.stop();
          },
          () => {},
        );
      },
    });
    const exitMs = performance.now() - t0;
    console.log(`boot to READY=1: ${readyMs.toFixed(0)} ms, to exit: ${exitMs.toFixed(0)} ms`);
    expect(events).toContain('ready');
    expect(checks).toEqual({ target: 'active', state: 'running', failed: '' });
    expect(status.code).toBe(0);
    assertNothingLeft(machine);
  }, 120_000);

  it('powers off by itself (systemd.unit=poweroff.target) with exit status 0', async () => {
    const machine = `sdboot-off-${process.pid}`;
    const t0 = performance.now();
    const status = await runContainer(settingsFor(machine, 'systemd.unit=poweroff.target'), { runtimeDir });
    console.log(`boot to poweroff: ${(performance.now() - t0).toFixed(0)} ms`);
    expect(status).toMatchObject({ code: 0, signal: null });
    assertNothingLeft(machine);
  }, 120_000);

  it('boots with --private-users=pick (the cgroup is delegated to the shifted root)', async () => {
    const machine = `sdboot-pu-${process.pid}`;
    let state = '';
    const status = await runContainer(settingsFor(machine, '--private-users=pick'), {
      runtimeDir,
      onContainer: (c: Container) => {
        c.whenReady().then(
          () => {
            state = inGuest(c.pid!, 'systemctl', 'is-system-running');
            c.stop();
          },
          () => {},
        );
      },
    });
    expect(state).toBe('running');
    expect(status.code).toBe(0);
    assertNothingLeft(machine);
  }, 120_000);

  it('restarts a guest that reboots, then stops it', async () => {
    const machine = `sdboot-reboot-${process.pid}`;
    const boots: number[] = [];
    const status = await runContainer(settingsFor(machine), {
      runtimeDir,
      onContainer: (c: Container) => {
        boots.push(c.pid ?? 0);
        c.whenReady().then(
          () => {
            // The first boot reboots from inside; the second is stopped from outside.
            if (boots.length === 1) inGuest(c.pid!, 'systemctl', 'reboot');
            else c.stop();
          },
          () => {},
        );
      },
    });
    expect(boots).toHaveLength(2);
    expect(boots[0]).not.toBe(boots[1]);
    expect(status.code).toBe(0);
    assertNothingLeft(machine);
  }, 180_000);
});

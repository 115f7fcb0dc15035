import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import type { MessageBus } from '../src/index.js';
import {
  canRun,
  connectBus,
  type Daemon,
  manager,
  startDaemon,
  startNspawn,
  stopNspawn,
  waitFor,
} from './helpers.js';

// machinectl login: a getty on a pty in a booted Debian guest, started by the
// guest's own systemd at sd-machined's request (OpenMachineLogin).

const BUILD = fileURLToPath(new URL('../../../tools/debian-tree/build.sh', import.meta.url));
const MACHINECTL = fileURLToPath(new URL('../src/machinectl.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url));
const skip = canRun();
const name = 'sdlogin';
let bus: PrivateBus;
let client: MessageBus;
let daemon: Daemon;
let root: string;
let nspawn: ReturnType<typeof startNspawn>;

beforeAll(async () => {
  if (skip) return;
  const tree = execFileSync(BUILD, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 20 * 60_000,
  }).trim();
  bus = await startPrivateBus();
  root = mkdtempSync(join(tmpdir(), 'sd-login-root-'));
  client = await connectBus(bus.address);
  daemon = await startDaemon(bus.env, root, client);
  nspawn = startNspawn(bus.env, ['-b', '-D', tree, '-M', name, '--volatile=state', '--console=pipe']);
  const names = async () => ((await manager(client, 'ListMachines'))[0] as unknown[][]).map((r) => r[0]);
  await waitFor('the guest to register', async () => (await names()).includes(name), 60_000);
}, 20 * 60_000);

afterAll(async () => {
  if (skip) return;
  await stopNspawn(nspawn);
  await daemon?.stop();
  client?.disconnect();
  await bus?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe.skipIf(skip)('machinectl login', () => {
  it('gets a login prompt from a getty the guest’s systemd started', async () => {
    let out = '';
    let done = false;
    const attempt = () =>
      new Promise<void>((resolve) => {
        const p = spawn(
          process.execPath,
          ['--conditions=sd-source', '--import', TSX, MACHINECTL, 'login', name],
          {
            env: { ...bus.env, NO_COLOR: '1' },
            stdio: ['pipe', 'pipe', 'pipe'],
          },
        );
        p.stdout.on('data', (d) => {
          out += d;
          if (/login:/.test(out)) {
            done = true;
            p.kill('SIGTERM');
          }
        });
        p.stderr.on('data', (d) => (out += d));
        const t = setTimeout(() => p.kill('SIGKILL'), 15_000);
        p.on('exit', () => {
          clearTimeout(t);
          resolve();
        });
      });
    // The guest's bus comes up a little after it registers: try again until it answers.
    for (let i = 0; i < 10 && !done; i++) {
      await attempt();
      if (!done) await new Promise((r) => setTimeout(r, 1000));
    }
    expect(out).toMatch(/login:/);
  }, 120_000);
});

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbusDaemonAvailable, type PrivateBus, startPrivateBus } from '../tools/dbus/private-bus.js';
import { makeBusyboxTree, sdNspawn } from './lib/trees.js';

// Options of sd-nspawn and of the daemons that no other test shows working
// (option-audit.test.ts names this file for them).

const repo = join(import.meta.dirname, '..');
const MACHINED = join(repo, 'packages/machined/dist/machined.js');
const MACHINECTL = join(repo, 'packages/machined/dist/machinectl.cjs');
const IMPORTD = join(repo, 'packages/importd/dist/importd.js');

describe('sd-nspawn', () => {
  let tree: ReturnType<typeof makeBusyboxTree>;
  beforeAll(() => {
    tree = makeBusyboxTree('cli-opt-');
  });
  afterAll(() => tree?.remove());
  const status = (args: string[], field: string) => {
    const r = sdNspawn([
      '-q',
      '-D',
      tree.dir,
      '--machine=cli-opt',
      ...args,
      'sh',
      '-c',
      `grep ^${field}: /proc/self/status`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.trim().split(/\s+/)[1] as string;
  };

  it('--no-new-privileges=yes sets NoNewPrivs for the payload', () => {
    expect(status([], 'NoNewPrivs')).toBe('0');
    expect(status(['--no-new-privileges=yes'], 'NoNewPrivs')).toBe('1');
  });

  it('--capability adds a capability the default set leaves out (CAP_SYS_TIME)', () => {
    const SYS_TIME = 1n << 25n;
    expect(BigInt(`0x${status([], 'CapEff')}`) & SYS_TIME).toBe(0n);
    expect(BigInt(`0x${status(['--capability=CAP_SYS_TIME'], 'CapEff')}`) & SYS_TIME).toBe(SYS_TIME);
  });
});

describe.skipIf(!dbusDaemonAvailable())('daemons', () => {
  let bus: PrivateBus;
  let dir: string;
  beforeAll(async () => {
    bus = await startPrivateBus();
    dir = mkdtempSync(join(tmpdir(), 'cli-opt-daemon-'));
  });
  afterAll(async () => {
    await bus?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('--bus-address: sd-machined and sd-importd connect to the bus named, not the default', () => {
    const gone = 'unix:path=/nonexistent/cli-opt-bus';
    for (const bin of [MACHINED, IMPORTD]) {
      const r = spawnSync(process.execPath, [bin, `--bus-address=${gone}`, `--root=${dir}`], {
        encoding: 'utf8',
        env: bus.env,
        timeout: 30_000,
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('/nonexistent/cli-opt-bus');
    }
  });

  it('sd-machined --state-dir and --nspawn: state where it is told, machinectl start runs the sd-nspawn named', async () => {
    const state = join(dir, 'state');
    mkdirSync(join(dir, 'var/lib/machines/cli-opt-img'), { recursive: true });
    writeFileSync(join(dir, 'var/lib/machines/cli-opt-img/.keep'), '');
    const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/nonexistent/cli-opt-default' };
    const d = spawn(
      process.execPath,
      [
        MACHINED,
        `--bus-address=${bus.address}`,
        `--root=${dir}`,
        `--state-dir=${state}`,
        '--nspawn=/nonexistent/cli-opt-nspawn',
      ],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    d.stderr.on('data', (b: Buffer) => {
      log += b.toString();
    });
    try {
      for (let i = 0; i < 300 && !log.includes('Serving'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(log).toContain(`from ${state})`);
      const r = spawnSync(process.execPath, [MACHINECTL, 'start', 'cli-opt-img'], {
        encoding: 'utf8',
        env: bus.env,
        timeout: 30_000,
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('/nonexistent/cli-opt-nspawn not found');
    } finally {
      d.kill('SIGTERM');
      await new Promise((r) => d.once('exit', r));
    }
  });
});

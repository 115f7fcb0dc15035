import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgv, startContainer } from '@sd/nspawn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from './lib/trees.js';

// Signals through an init that records them (as systemd's TEST-13-NSPAWN
// checks): signals sent to the container's PID 1 from the host, the stop
// signal sd-nspawn sends, and with --as-pid2 the stub init's forwarding to
// the payload. The init writes each signal it gets into a host directory.

let tree: ReturnType<typeof makeBusyboxTree>;
let rec: string;
beforeAll(() => {
  tree = makeBusyboxTree('tst-signals-');
  rec = mkdtempSync(join(tmpdir(), 'tst-signals-rec-'));
  chmodSync(rec, 0o777);
});
afterAll(() => {
  tree?.remove();
  rmSync(rec, { recursive: true, force: true });
});

const SIGNALS = ['HUP', 'INT', 'QUIT', 'USR1', 'USR2', 'WINCH', 'CONT'] as const;
// Records every signal; the stop signal (TERM) is recorded too, then ends the init with 0.
const RECORDER = [
  ...SIGNALS.map((s) => `trap 'echo ${s} >> /rec/log' ${s}`),
  "trap 'echo TERM >> /rec/log; exit 0' TERM",
  'echo $$ > /rec/up',
  'while :; do sleep 0.05; done',
].join('\n');

const log = () =>
  existsSync(join(rec, 'log')) ? readFileSync(join(rec, 'log'), 'utf8').trim().split('\n') : [];

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  for (const t0 = Date.now(); !ok(); ) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function recordSignals(extra: string[]) {
  rmSync(join(rec, 'log'), { force: true });
  rmSync(join(rec, 'up'), { force: true });
  const { settings, explicit } = parseArgv([
    '-q',
    '-D',
    tree.dir,
    '--machine=tst-signals',
    '--console=pipe',
    `--bind=${rec}:/rec`,
    ...extra,
    'sh',
    '-c',
    RECORDER,
  ]);
  const { container, exited } = await startContainer(settings, { explicit });
  // The shell creates the file, then writes to it: wait for what it wrote, not for the file.
  const up = () => (existsSync(join(rec, 'up')) ? readFileSync(join(rec, 'up'), 'utf8') : '');
  await until('the init to start', () => up().endsWith('\n'));
  const pidInside = up().trim();
  // One at a time, each recorded before the next: the order is part of what is checked.
  for (const [i, s] of SIGNALS.entries()) {
    process.kill(container.pid!, `SIG${s}`);
    await until(`SIG${s} to be recorded`, () => log().length > i);
  }
  container.stop();
  // A stop signal the recorder does not exit on: once it is recorded, end the init with TERM.
  if (extra.includes('--kill-signal=SIGUSR2')) {
    await until('the stop signal to be recorded', () => log().length > SIGNALS.length);
    process.kill(container.pid!, 'SIGTERM');
  }
  const status = await exited;
  return { pidInside, status, log: log() };
}

describe('signals reach the init and are recorded', () => {
  it('PID 1: every signal from the host, then the stop signal', async () => {
    // The stop signal named: without --boot systemd-nspawn's default is SIGKILL, which nothing can record.
    const r = await recordSignals(['--kill-signal=SIGTERM']);
    expect(r.pidInside).toBe('1');
    expect(r.log).toEqual([...SIGNALS, 'TERM']);
    expect(r.status).toMatchObject({ code: 0, signal: null });
  });

  it('--kill-signal picks the stop signal the init gets', async () => {
    const r = await recordSignals(['--kill-signal=SIGUSR2']);
    // USR2 is recorded and does not end the recorder; the TERM after it does.
    expect(r.log).toEqual([...SIGNALS, 'USR2', 'TERM']);
    expect(r.status).toMatchObject({ code: 0, signal: null });
  });

  it('--as-pid2: the stub init forwards each signal to the payload (PID 2)', async () => {
    const r = await recordSignals(['--as-pid2', '--kill-signal=SIGTERM']);
    expect(r.pidInside).toBe('2');
    expect(r.log).toEqual([...SIGNALS, 'TERM']);
    expect(r.status).toMatchObject({ code: 0, signal: null });
  });
});

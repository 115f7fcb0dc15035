import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import type { MessageBus } from '../src/index.js';
import { canRun, connectBus, makeTree, manager, startNspawn, stopNspawn, waitFor } from './helpers.js';
import { fdCount, listNames, type RobustDaemon, rssMb, startRobustDaemon } from './robust-lib.js';

// sd-machined's footprint (issue 10's figures): RSS and fds idle, after
// 1 000 ListMachines and after start/terminate cycles of real containers.
// CI runs 10 cycles; SD_ROBUST_CYCLES=100 for the closing note's figures.

const skip = canRun();
const CYCLES = Number(process.env.SD_ROBUST_CYCLES ?? 10);
let bus: PrivateBus;
let client: MessageBus;
let daemon: RobustDaemon;
let root: string;
let tree: ReturnType<typeof makeTree>;

beforeAll(async () => {
  if (skip) return;
  bus = await startPrivateBus();
  root = mkdtempSync(join(tmpdir(), 'sd-robust-figures-'));
  client = await connectBus(bus.address);
  daemon = await startRobustDaemon(bus.env, root, client);
  tree = makeTree();
});

afterAll(async () => {
  if (skip) return;
  await daemon?.stop();
  client?.disconnect();
  await bus?.stop();
  tree?.remove();
  rmSync(root, { recursive: true, force: true });
});

describe.skipIf(skip)('sd-machined footprint', () => {
  it(`keeps its fds flat over 1 000 ListMachines and ${CYCLES} container start/terminate cycles`, async () => {
    await sleep(500);
    const idle = { rss: rssMb(daemon.pid), fds: fdCount(daemon.pid) };
    for (let i = 0; i < 1000; i++) await manager(client, 'ListMachines');
    const listed = { rss: rssMb(daemon.pid), fds: fdCount(daemon.pid) };
    const fdsPerCycle: number[] = [];
    for (let i = 0; i < CYCLES; i++) {
      const name = `robcycle${i % 3}`;
      const n = startNspawn(bus.env, [
        '-D',
        tree.dir,
        '-M',
        name,
        '--private-network',
        'sh',
        '-c',
        'trap "exit 0" TERM; while :; do sleep 0.1; done',
      ]);
      try {
        await waitFor(name, async () => (await listNames(client)).includes(name), 60_000);
        await manager(client, 'TerminateMachine', 's', [name]);
        await waitFor(`${name} to go`, async () => !(await listNames(client)).includes(name), 60_000);
        await waitFor(
          'sd-nspawn to exit',
          () => n.proc.exitCode !== null || n.proc.signalCode !== null,
          30_000,
        );
      } finally {
        await stopNspawn(n);
      }
      fdsPerCycle.push(fdCount(daemon.pid));
    }
    await sleep(500);
    const cycled = { rss: rssMb(daemon.pid), fds: fdCount(daemon.pid) };
    console.log(
      `footprint: idle ${idle.rss} MB / ${idle.fds} fds; after 1000 ListMachines ${listed.rss} MB / ${listed.fds} fds; after ${CYCLES} start/terminate cycles ${cycled.rss} MB / ${cycled.fds} fds (per cycle: ${fdsPerCycle.join(' ')})`,
    );
    expect(listed.fds).toBeLessThanOrEqual(idle.fds + 1);
    expect(cycled.fds).toBeLessThanOrEqual(idle.fds + 2);
  }, 1_800_000);
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  connectBus,
  makeTree,
  manager,
  readPty,
  startDaemon,
  startNspawn,
  stopNspawn,
  waitFor,
} from '../../../packages/machined/test/helpers.js';
import { closeQuietly } from '../../../packages/sys/src/index.js';
import { startPrivateBus } from '../../dbus/private-bus.js';

/**
 * The cost of entering a machine: OpenMachineShell round trips (the call,
 * then the pty read until the shell has run `true` and hung up) against
 * sd-machined on a private bus, one busybox container. Run it on two
 * checkouts to compare them.
 *
 *   node --conditions=sd-source --import tsx tools/bench/enter/shell.ts [--runs 30]
 */

function report(what: string, times: number[]): void {
  times.sort((a, b) => a - b);
  const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(1);
  process.stdout.write(
    `${what}, ${times.length} runs: median ${q(0.5)} ms, p10 ${q(0.1)} ms, p90 ${q(0.9)} ms\n`,
  );
}

const { values } = parseArgs({ options: { runs: { type: 'string', default: '30' } } });
const runs = Number(values.runs);
const bus = await startPrivateBus();
const root = mkdtempSync(join(tmpdir(), 'sd-bench-enter-'));
const client = await connectBus(bus.address);
const daemon = await startDaemon(bus.env, root, client);
const tree = makeTree();
const name = 'enter-bench';
const n = startNspawn(bus.env, [
  '-D',
  tree.dir,
  '-M',
  name,
  '--private-network',
  'sh',
  '-c',
  'trap "exit 0" TERM; while :; do sleep 1; done',
]);
try {
  await waitFor(
    name,
    async () => ((await manager(client, 'ListMachines'))[0] as unknown[][]).some((r) => r[0] === name),
    60_000,
  );
  const times: number[] = [];
  for (let i = 0; i < runs + 3; i++) {
    const t0 = performance.now();
    const [fd] = (await manager(client, 'OpenMachineShell', 'sssasas', [
      name,
      'root',
      '/bin/true',
      [],
      [],
    ])) as [number];
    await readPty(fd, 10_000);
    closeQuietly(fd);
    if (i >= 3) times.push(performance.now() - t0);
  }
  report('OpenMachineShell round trip', times);
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['GetMachineOSRelease', () => manager(client, 'GetMachineOSRelease', 's', [name])],
    [
      'OpenMachinePTY',
      async () => closeQuietly(((await manager(client, 'OpenMachinePTY', 's', [name])) as [number])[0]),
    ],
    ['ListMachines', () => manager(client, 'ListMachines')],
  ];
  for (const [what, call] of calls) {
    const t: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await call();
      t.push(performance.now() - t0);
    }
    report(what, t);
  }
} finally {
  await stopNspawn(n);
  await daemon.stop();
  client.disconnect();
  await bus.stop();
  tree.remove();
  rmSync(root, { recursive: true, force: true });
}

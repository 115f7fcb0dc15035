import { spawnSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machineObjectPath } from '../src/index.js';
import { callOn, canRun, errorOf, type MachineFixture, manager, startMachineFixture } from './helpers.js';

// Issue 14: a source path that is a symbolic link is copied as the link
// itself (systemd's copy_tree_at looks at it with AT_SYMLINK_NOFOLLOW) by
// CopyFromMachine/CopyToMachine, the Machine objects' CopyFrom/CopyTo and
// machinectl copy-from/copy-to — never followed, out of the machine's root
// or on the host; a link as the destination's parent is resolved inside the
// machine's root. Against the real daemon on a private bus, with a container
// started by sd-nspawn. Machine name "copylinks".

const MACHINECTL = fileURLToPath(new URL('../src/machinectl.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url));
const NAME = 'copylinks';
const MACHINE_IFACE = 'org.freedesktop.machine1.Machine';
const skip = canRun();
let fx: MachineFixture;
let host: string;
/** A host file the links point at: it must never be read into a copy nor written. */
let secret: string;
let secretMtime: number;

function machinectl(...args: string[]) {
  return spawnSync(process.execPath, ['--conditions=sd-source', '--import', TSX, MACHINECTL, ...args], {
    env: { ...fx.bus.env, NO_COLOR: '1' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 30_000,
  });
}

const inMachine = (p: string) => join(fx.tree.dir, p);
const temps = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('.#'));

function secretUntouched(): void {
  expect(readFileSync(secret, 'utf8')).toBe('host secret\n');
  expect(statSync(secret).mtimeMs).toBe(secretMtime);
}

beforeAll(async () => {
  if (skip) return;
  fx = await startMachineFixture(NAME);
  host = mkdtempSync(join(tmpdir(), 'sd-copylinks-host-'));
  secret = join(host, 'secret');
  writeFileSync(secret, 'host secret\n');
  secretMtime = statSync(secret).mtimeMs;
  mkdirSync(inMachine('root'), { recursive: true });
}, 120_000);

afterAll(async () => {
  await fx?.stop();
  if (host) rmSync(host, { recursive: true, force: true });
});

describe.skipIf(skip)('copies of symbolic links', () => {
  it('CopyFromMachine copies a link out of the root as the link, relative or absolute', async () => {
    // Followed on the host, these would reach the host's secret; inside the root there is nothing.
    symlinkSync(secret, inMachine('root/abs'));
    symlinkSync(`../../../../../../../..${secret}`, inMachine('root/rel'));
    await manager(fx.client, 'CopyFromMachine', 'sss', [NAME, '/root/abs', join(host, 'abs')]);
    await manager(fx.client, 'CopyFromMachine', 'sss', [NAME, '/root/rel', join(host, 'rel')]);
    expect(lstatSync(join(host, 'abs')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(host, 'abs'))).toBe(secret);
    expect(readlinkSync(join(host, 'rel'))).toBe(`../../../../../../../..${secret}`);
    // The Machine object's CopyFrom does the same.
    await callOn(fx.client, machineObjectPath(NAME), MACHINE_IFACE, 'CopyFrom', 'ss', [
      '/root/abs',
      join(host, 'abs2'),
    ]);
    expect(readlinkSync(join(host, 'abs2'))).toBe(secret);
    secretUntouched();
    expect(temps(host)).toEqual([]);
  });

  it('CopyToMachine copies a host link as the link; the machine file it names is untouched', async () => {
    writeFileSync(inMachine('root/target'), 'machine file\n');
    symlinkSync('/root/target', join(host, 'to-target'));
    symlinkSync(secret, join(host, 'to-secret'));
    await manager(fx.client, 'CopyToMachine', 'sss', [NAME, join(host, 'to-target'), '/root/l1']);
    await callOn(fx.client, machineObjectPath(NAME), MACHINE_IFACE, 'CopyTo', 'ss', [
      join(host, 'to-secret'),
      '/root/l2',
    ]);
    expect(readlinkSync(inMachine('root/l1'))).toBe('/root/target');
    expect(readlinkSync(inMachine('root/l2'))).toBe(secret);
    expect(readFileSync(inMachine('root/target'), 'utf8')).toBe('machine file\n');
    // An existing destination is not replaced without the flag, and never written through.
    expect(
      await errorOf(manager(fx.client, 'CopyToMachine', 'sss', [NAME, join(host, 'to-secret'), '/root/l1'])),
    ).toBe('org.freedesktop.DBus.Error.FileExists');
    await manager(fx.client, 'CopyToMachineWithFlags', 'ssst', [
      NAME,
      join(host, 'to-secret'),
      '/root/l1',
      1n,
    ]);
    expect(readlinkSync(inMachine('root/l1'))).toBe(secret);
    expect(readFileSync(inMachine('root/target'), 'utf8')).toBe('machine file\n');
    secretUntouched();
    expect(temps(inMachine('root'))).toEqual([]);
  });

  it('resolves a link as the destination parent inside the machine root, never on the host', async () => {
    // The links name a host directory by its absolute path (under /root: /tmp and /var are tmpfs in
    // the machine); in the machine that path is another place.
    const outside = mkdtempSync('/root/sd-copylinks-');
    try {
      mkdirSync(inMachine(outside), { recursive: true });
      symlinkSync(outside, inMachine('root/pd'));
      symlinkSync('../../../../../../..', inMachine('root/up'));
      writeFileSync(join(host, 'payload'), 'payload\n');
      await manager(fx.client, 'CopyToMachine', 'sss', [NAME, join(host, 'payload'), '/root/pd/landed']);
      const viaUp = `/root/up${outside}/landed2`;
      await manager(fx.client, 'CopyToMachine', 'sss', [NAME, join(host, 'payload'), viaUp]);
      expect(readFileSync(inMachine(join(outside, 'landed')), 'utf8')).toBe('payload\n');
      expect(readFileSync(inMachine(join(outside, 'landed2')), 'utf8')).toBe('payload\n');
      expect(readdirSync(outside)).toEqual([]);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
    // A link given as the destination parent of a copy *from* the machine is the caller's host path: followed there.
    mkdirSync(join(host, 'real'));
    symlinkSync(join(host, 'real'), join(host, 'via'));
    await manager(fx.client, 'CopyFromMachine', 'sss', [NAME, '/root/abs', join(host, 'via/abs')]);
    expect(readlinkSync(join(host, 'real/abs'))).toBe(secret);
    secretUntouched();
  });

  it('machinectl copy-from and copy-to copy links as links', () => {
    let r = machinectl('copy-from', NAME, '/root/rel', join(host, 'ctl-rel'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readlinkSync(join(host, 'ctl-rel'))).toBe(`../../../../../../../..${secret}`);
    r = machinectl('copy-to', NAME, join(host, 'to-secret'), '/root/ctl-l');
    expect(r.status).toBe(0);
    expect(readlinkSync(inMachine('root/ctl-l'))).toBe(secret);
    secretUntouched();
  });
});

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyDevicePolicyV1,
  applyDevicePolicyV2,
  deviceAllowLines,
  NSPAWN_DEVICE_ALLOW,
} from '../src/cgroup/devices.js';
import { attachLoop, type LoopDevice } from '../src/loop/loop.js';

// The device policy against the real kernel, each mechanism on its own:
// the cgroup v2 program in /sys/fs/cgroup/unified (the only one on a pure
// v2 host) and the v1 devices controller. A shell moves itself into the
// cgroup and then tries the host's loop device made here.

const UNIFIED = '/sys/fs/cgroup/unified';
const V1 = '/sys/fs/cgroup/devices';
const NAME = `sd-seccomp-devices-${process.pid}`;

let dir: string;
let loop: LoopDevice;
const made: string[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sd-seccomp-dev-'));
  const img = join(dir, 'disk.img');
  writeFileSync(img, Buffer.alloc(1 << 20, 0x5a));
  loop = attachLoop(img);
});

afterAll(() => {
  for (const d of made.reverse()) {
    try {
      rmdirSync(d);
    } catch {}
  }
  loop?.detach();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a shell script in the cgroup `cg` (or where we are, with none); returns its output. */
function probe(cg: string | undefined): string {
  const node = join(dir, `n${made.length}-${Math.random().toString(36).slice(2)}`);
  const script = [
    cg ? `echo $$ > ${cg}/cgroup.procs || exit 99` : ':',
    `head -c 1 ${loop.path} >/dev/null 2>&1 && echo open-loop || echo no-open-loop`,
    `mknod ${node}-b b 7 ${loop.number} 2>/dev/null && echo mknod-loop || echo no-mknod-loop`,
    `head -c 1 /dev/urandom >/dev/null 2>&1 && echo open-urandom || echo no-open-urandom`,
    `mknod ${node}-null c 1 3 2>/dev/null && echo mknod-null || echo no-mknod-null`,
    `exec 3<>/dev/net/tun 2>/dev/null && echo open-tun || echo no-open-tun`,
  ].join('\n');
  const r = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

function mkcg(path: string): string {
  mkdirSync(path);
  made.push(path);
  return path;
}

describe('device policy', () => {
  it('writes v1 allow lines', () => {
    expect(deviceAllowLines(NSPAWN_DEVICE_ALLOW)).toContain('c 136:* rw');
    expect(deviceAllowLines(NSPAWN_DEVICE_ALLOW)).toContain('c 10:200 rwm');
    expect(() => deviceAllowLines([{ type: 'c', major: 1, access: 'rwx' }])).toThrow(/rwm/);
  });

  it('without a policy the host loop device is open to root (the attack works)', () => {
    const out = probe(undefined);
    expect(out).toContain('\nmknod-loop');
    expect(out).toMatch(/^open-loop/);
  });

  it('cgroup v2: a device program refuses the loop device and allows the nspawn list', () => {
    const cg = mkcg(`${UNIFIED}/${NAME}-v2`);
    applyDevicePolicyV2(cg, NSPAWN_DEVICE_ALLOW);
    const out = probe(cg).split('\n');
    expect(out).toEqual(['no-open-loop', 'no-mknod-loop', 'open-urandom', 'mknod-null', 'open-tun', '']);
  });

  it('cgroup v1: the devices controller refuses the loop device; a child cannot widen it', () => {
    const cg = mkcg(`${V1}/${NAME}-v1`);
    applyDevicePolicyV1(cg, NSPAWN_DEVICE_ALLOW);
    const out = probe(cg).split('\n');
    expect(out).toEqual(['no-open-loop', 'no-mknod-loop', 'open-urandom', 'mknod-null', 'open-tun', '']);
    // What the container sees as its cgroup root: a child of the policy's cgroup.
    const child = mkcg(`${cg}/payload`);
    for (const line of ['a', `b 7:${loop.number} rwm`, 'b *:* rwm'])
      expect(
        () => execFileSync('sh', ['-c', `echo '${line}' > ${child}/devices.allow`], { stdio: 'pipe' }),
        line,
      ).toThrow(/Operation not permitted|I\/O error|Invalid argument/);
    expect(readFileSync(`${child}/devices.list`, 'utf8')).not.toMatch(/^a |^b 7:|^b \*/m);
    expect(probe(child)).toMatch(/^no-open-loop/);
  });
});

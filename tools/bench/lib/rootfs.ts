import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The benchmarks' container: a busybox tree in a temporary directory, and
 * its removal — after every mount below it is gone, so that rm can never
 * reach into a mounted host directory.
 */

export const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];

export function findBusybox(): string | undefined {
  return BUSYBOX_CANDIDATES.find((p) => existsSync(p));
}

export interface BenchRoot {
  /** The temporary directory holding everything. */
  dir: string;
  /** The busybox tree. */
  rootfs: string;
}

/** `name` goes into the temporary directory's name (sd-bench-NAME-XXXXXX). */
export function makeBusyboxRoot(busybox: string, name = 'spawn'): BenchRoot {
  const dir = mkdtempSync(join(tmpdir(), `sd-bench-${name}-`));
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'tmp', 'etc', 'run', 'var']) {
    mkdirSync(join(rootfs, d), { recursive: true });
  }
  copyFileSync(busybox, join(rootfs, 'bin/busybox'));
  // Inside a chroot so the applet links point at /bin/busybox, not at the host path.
  const r = spawnSync('chroot', [rootfs, '/bin/busybox', '--install', '-s'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`busybox --install failed: ${r.stderr || r.error?.message}`);
  writeFileSync(join(rootfs, 'etc/os-release'), 'ID=busybox\nNAME=BusyBox\n');
  return { dir, rootfs };
}

/** Mount points at or below `dir` in this mount namespace, deepest first. */
export function mountsBelow(dir: string): string[] {
  const decodeOctal = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => decodeOctal(l.split(' ')[4] ?? ''))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts everything below the root's directory, then removes it. Safe to call twice. */
export function removeRoot(root: BenchRoot): void {
  if (!existsSync(root.dir)) return;
  for (const m of mountsBelow(root.dir)) spawnSync('umount', ['-l', m]);
  const left = mountsBelow(root.dir);
  if (left.length) throw new Error(`still mounted, not removing ${root.dir}: ${left.join(', ')}`);
  rmSync(root.dir, { recursive: true, force: true });
}

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SdError } from '@sd/sys';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type MountedImage, mountImage, partitionTypeGuid } from '../src/index.js';
import { kernelHas, loopsOf, makeImage, mountsOf, run, scratch } from './lib/images.js';

// Where the ESP goes (/efi, or an empty /boot as systemd falls back to), stale
// BLKPG partitions on a reused loop device, and teardown's EBUSY retries.
// The ESPs here carry ext4 so that the placement is tested on kernels without
// vfat too; the one vfat test says why it skips.

const T = {
  root: partitionTypeGuid('root', 'x86-64')!,
  esp: partitionTypeGuid('esp')!,
  xbootldr: partitionTypeGuid('xbootldr')!,
};

let s: ReturnType<typeof scratch>;
const live: MountedImage[] = [];
beforeAll(() => {
  s = scratch('sd-gpt-esp-');
});
afterEach(() => {
  while (live.length) live.pop()!.release();
});
afterAll(() => s?.remove());

function image(name: string, rootFiles: Record<string, string>, extra: 'xbootldr' | undefined = undefined) {
  const path = join(s.dir, `${name}.raw`);
  makeImage(
    path,
    'gpt',
    [
      { type: T.root, sizeMiB: 16, fs: 'ext4', files: rootFiles },
      { type: T.esp, sizeMiB: 16, fs: 'ext4', files: { 'EFI/esp-marker': 'esp\n' } },
      ...(extra
        ? [{ type: T.xbootldr, sizeMiB: 16, fs: 'ext4' as const, files: { 'xbootldr-marker': 'x\n' } }]
        : []),
    ],
    s.dir,
  );
  return path;
}

function mountedAt(path: string, name: string): Record<string, string> {
  const dir = join(s.dir, `mnt-${name}`);
  const m = mountImage(path, dir, { mkdir: true });
  live.push(m);
  return Object.fromEntries(m.mounts.map((x) => [x.step.role, x.path.slice(dir.length) || '/']));
}

describe('the ESP mount point', () => {
  it('goes to /efi when the root has /efi', () => {
    expect(mountedAt(image('efi', { 'efi/': '', 'boot/': '' }), 'efi')).toEqual({ root: '/', esp: '/efi' });
    expect(readFileSync(join(s.dir, 'mnt-efi/efi/EFI/esp-marker'), 'utf8')).toBe('esp\n');
  });

  it('falls back to an empty /boot when the root has no /efi', () => {
    expect(mountedAt(image('boot', { 'boot/': '' }), 'boot')).toEqual({ root: '/', esp: '/boot' });
    expect(readFileSync(join(s.dir, 'mnt-boot/boot/EFI/esp-marker'), 'utf8')).toBe('esp\n');
    expect(existsSync(join(s.dir, 'mnt-boot/efi'))).toBe(false);
  });

  it('makes /efi when /boot is not empty, or when there is neither', () => {
    expect(mountedAt(image('full-boot', { 'boot/vmlinuz': 'k\n' }), 'full-boot')).toEqual({
      root: '/',
      esp: '/efi',
    });
    expect(readFileSync(join(s.dir, 'mnt-full-boot/boot/vmlinuz'), 'utf8')).toBe('k\n');
    expect(mountedAt(image('bare', { 'etc/os-release': 'ID=x\n' }), 'bare')).toEqual({
      root: '/',
      esp: '/efi',
    });
  });

  it('never takes /boot when an XBOOTLDR partition is there: that one owns /boot', () => {
    expect(mountedAt(image('xbl', { 'boot/': '' }, 'xbootldr'), 'xbl')).toEqual({
      root: '/',
      xbootldr: '/boot',
      esp: '/efi',
    });
  });

  it.skipIf(!kernelHas('vfat'))(
    'a vfat ESP is mounted with umask=0077 (needs vfat in the running kernel)',
    () => {
      const path = join(s.dir, 'vfat.raw');
      makeImage(
        path,
        'gpt',
        [
          { type: T.root, sizeMiB: 16, fs: 'ext4', files: { 'efi/': '' } },
          { type: T.esp, sizeMiB: 34, fs: 'vfat' },
        ],
        s.dir,
      );
      const dir = join(s.dir, 'mnt-vfat');
      live.push(mountImage(path, dir, { mkdir: true }));
      const esp = mountsOf(dir).find((m) => m.path === join(dir, 'efi'));
      expect(esp?.fstype).toBe('vfat');
    },
  );
});

/** Removes the partitions left on a loop device once their holder is gone (a lazily detached mount may take a moment). */
function removeLeftPartitions(dev: string): void {
  const name = dev.slice(5);
  const deadline = Date.now() + 5000;
  for (;;) {
    const parts = readdirSync(`/sys/block/${name}`).filter((f) => f.startsWith(`${name}p`));
    if (!parts.length) return;
    for (const p of parts) spawnSync('delpart', [dev, p.slice(name.length + 1)]);
    if (Date.now() > deadline) throw new Error(`cleanup: ${dev} keeps partitions ${parts.join(', ')}`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
}

describe('loop devices and teardown', () => {
  it('removes partitions an earlier user left on the loop device it gets', () => {
    const path = image('stale', { 'etc/os-release': 'ID=stale\n' });
    // A partition added with BLKPG survives the detach of a device without partscan.
    for (let attempt = 0; ; attempt++) {
      const dev = run('losetup', ['--find', '--show', path]).trim();
      run('addpart', [dev, '1', '2048', '2048']);
      run('losetup', ['-d', dev]);
      expect(existsSync(`/sys/block/${dev.slice(5)}/${dev.slice(5)}p1`)).toBe(true);
      const dir = join(s.dir, `mnt-stale${attempt}`);
      let m: MountedImage | undefined;
      try {
        m = mountImage(path, dir, { mkdir: true });
        live.push(m);
      } finally {
        // Another run may have taken the device in between: then try again on a fresh one.
        if (m?.loop.path !== dev) run('delpart', [dev, '1']);
      }
      if (m.loop.path !== dev && attempt < 3) continue;
      expect(m.loop.path).toBe(dev);
      expect(readFileSync(join(dir, 'etc/os-release'), 'utf8')).toBe('ID=stale\n');
      break;
    }
  });

  it('waits out a process that holds a mount for a moment, and leaves nothing', async () => {
    const path = image('held', { 'etc/os-release': 'ID=held\n' });
    const dir = join(s.dir, 'mnt-held');
    const m = mountImage(path, dir, { mkdir: true });
    // A process with its cwd in the image for ~100 ms: umount says EBUSY until it is gone.
    const holder = spawn('sh', ['-c', 'cd "$1" && echo in && sleep 0.1', 'sh', join(dir, 'etc')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise((res) => holder.stdout.once('data', res));
    expect(() => run('umount', [dir])).toThrow(/busy/);
    m.release();
    expect(mountsOf(dir)).toEqual([]);
    expect(loopsOf(s.dir)).toEqual([]);
    await new Promise((res) => holder.once('close', res));
  });

  it('a holder that never lets go: release fails naming what it left, after detaching the mount', async () => {
    const path = image('stuck', { 'etc/os-release': 'ID=stuck\n' });
    const dir = join(s.dir, 'mnt-stuck');
    const m = mountImage(path, dir, { mkdir: true });
    const holder = spawn(
      'sh',
      ['-c', 'exec 3<"$1"; echo in; exec sleep 30', 'sh', join(dir, 'etc/os-release')],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      await new Promise((res) => holder.stdout.once('data', res));
      let err: unknown;
      try {
        m.release();
      } catch (e) {
        err = e;
      }
      // The mount is gone from the tree (detached lazily), but the partition under it is still busy.
      expect(mountsOf(dir)).toEqual([]);
      expect(err).toBeInstanceOf(SdError);
      expect((err as SdError).code).toBe('EBUSY');
      expect((err as Error).message).toContain(`taking down ${path} left something behind`);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((res) => holder.once('close', res));
      // What release() could not remove: the partition (BLKPG ones outlive the loop's autoclear).
      removeLeftPartitions(m.loop.path);
    }
  });
});

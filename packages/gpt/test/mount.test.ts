import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SdError } from '@sd/sys';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dissectImage, ImageError, type MountedImage, mountImage, partitionTypeGuid } from '../src/index.js';
import {
  kernelHas,
  loopsOf,
  MiB,
  makeImage,
  mkfsAt,
  mountsOf,
  run,
  scratch,
  sfdiskJson,
} from './lib/images.js';

// Real images made with sfdisk and mkfs, attached to loop devices, mounted, taken down.

const T = {
  root: partitionTypeGuid('root', 'x86-64')!,
  usr: partitionTypeGuid('usr', 'x86-64')!,
  home: partitionTypeGuid('home')!,
  srv: partitionTypeGuid('srv')!,
  var: partitionTypeGuid('var')!,
  esp: partitionTypeGuid('esp')!,
};
const CLI = fileURLToPath(new URL('../dist/dissect.js', import.meta.url));

let s: ReturnType<typeof scratch>;
let full: string;
let fullParts: ReturnType<typeof makeImage>;
const live: MountedImage[] = [];

beforeAll(() => {
  s = scratch();
  full = join(s.dir, 'full.raw');
  fullParts = makeImage(
    full,
    'gpt',
    [
      { type: T.esp, sizeMiB: 34, fs: 'vfat', name: 'ESP' },
      {
        type: T.root,
        sizeMiB: 32,
        fs: 'ext4',
        name: 'root-x86-64',
        files: { 'etc/os-release': 'ID=test\n' },
      },
      { type: T.usr, sizeMiB: 128, fs: 'btrfs', name: 'usr', files: { 'lib/os-release': 'ID=usr\n' } },
      {
        type: T.home,
        sizeMiB: 300,
        fs: 'xfs',
        name: 'home',
        attrs: 'GUID:60',
        files: { 'alice/hello': 'hi\n' },
      },
      { type: T.srv, sizeMiB: 8, fs: 'squashfs', name: 'srv', files: { 'www/index.html': '<p>srv</p>' } },
      { type: T.var, sizeMiB: 8, fs: 'erofs', name: 'var', files: { 'lib/state': 'var\n' } },
    ],
    s.dir,
  );
}, 120_000);

afterEach(() => {
  while (live.length) live.pop()!.release();
});

afterAll(() => s?.remove());

function noLeftovers(dir: string): void {
  expect(mountsOf(dir)).toEqual([]);
  expect(loopsOf(s.dir)).toEqual([]);
}

describe('dissecting real images', () => {
  it('GPT with root, usr, home, srv, var and ESP: roles, file systems, UUIDs as sfdisk wrote them', () => {
    const img = dissectImage(full);
    const sf = sfdiskJson(full).partitiontable.partitions;
    const byRole = Object.fromEntries(Object.entries(img.roles).map(([r, p]) => [r, p]));
    expect(Object.keys(byRole).sort()).toEqual(['esp', 'home', 'root', 'srv', 'usr', 'var']);
    const want: Record<string, string> = {
      esp: 'vfat',
      root: 'ext4',
      usr: 'btrfs',
      home: 'xfs',
      srv: 'squashfs',
      var: 'erofs',
    };
    for (const [role, fs] of Object.entries(want)) {
      const p = byRole[role]!;
      expect(p.fs?.type).toBe(fs);
      const ref = sf[p.number! - 1]!;
      expect(p.uuid).toBe(ref.uuid?.toLowerCase());
      expect(p.offset).toBe(ref.start * 512);
      expect(p.size).toBe(ref.size * 512);
      expect(p.label).toBe(ref.name);
    }
    expect(byRole.home!.flags.readOnly).toBe(true);
    expect(byRole.root!.flags.readOnly).toBe(false);
  });

  it('mounts in DPS order with the right contents and read-only flags; takes down in reverse', () => {
    const dir = join(s.dir, 'mnt-full');
    // The ESP is skipped here on every kernel (it is vfat, which some kernels lack): it stays
    // listed in the dissection but is not mounted. mount-esp.test.ts mounts ESPs.
    const m = mountImage(full, dir, { mkdir: true, skip: ['esp'] });
    live.push(m);
    expect(m.mounts.map((x) => x.step.role)).toEqual(['root', 'usr', 'home', 'srv', 'var']);
    expect(m.image.roles.esp).toMatchObject({ number: 1, fs: { type: 'vfat' } });
    expect(mountsOf(join(dir, 'efi'))).toEqual([]);
    expect(readFileSync(join(dir, 'etc/os-release'), 'utf8')).toBe('ID=test\n');
    expect(readFileSync(join(dir, 'usr/lib/os-release'), 'utf8')).toBe('ID=usr\n');
    expect(readFileSync(join(dir, 'home/alice/hello'), 'utf8')).toBe('hi\n');
    expect(readFileSync(join(dir, 'srv/www/index.html'), 'utf8')).toBe('<p>srv</p>');
    expect(readFileSync(join(dir, 'var/lib/state'), 'utf8')).toBe('var\n');
    const mounts = Object.fromEntries(mountsOf(dir).map((x) => [x.path, x]));
    expect(mounts[dir]).toMatchObject({ fstype: 'ext4' });
    expect(mounts[dir]!.options.split(',')[0]).toBe('rw');
    expect(mounts[join(dir, 'usr')]).toMatchObject({ fstype: 'btrfs' });
    expect(mounts[join(dir, 'usr')]!.options.split(',')[0]).toBe('rw');
    expect(mounts[join(dir, 'home')]!.options.split(',')[0]).toBe('ro'); // GPT bit 60
    expect(mounts[join(dir, 'srv')]!.options.split(',')[0]).toBe('ro'); // squashfs
    expect(mounts[join(dir, 'var')]!.options.split(',')[0]).toBe('ro'); // erofs
    expect(() => writeFileSync(join(dir, 'home/x'), 'x')).toThrow(/EROFS/);
    writeFileSync(join(dir, 'usr/written'), 'ok');
    m.release();
    live.pop();
    noLeftovers(dir);
  });

  it('takes everything down again when a mount fails halfway', () => {
    // The ESP is mounted last and fails on every kernel: without a vfat driver its mount fails;
    // with one, /efi is a file in the root and /boot is not empty, so there is nowhere to put it.
    const path = join(s.dir, 'blocked-esp.raw');
    makeImage(
      path,
      'gpt',
      [
        { type: T.esp, sizeMiB: 34, fs: 'vfat', name: 'ESP' },
        { type: T.root, sizeMiB: 16, fs: 'ext4', files: { efi: 'not a directory\n', 'boot/kernel': 'k\n' } },
        { type: T.usr, sizeMiB: 16, fs: 'ext4', files: { 'lib/os-release': 'ID=usr\n' } },
      ],
      s.dir,
    );
    const dir = join(s.dir, 'mnt-fail');
    let err: unknown;
    try {
      live.push(mountImage(path, dir, { mkdir: true }));
    } catch (e) {
      err = e;
    }
    if (kernelHas('vfat')) {
      expect(err).toBeInstanceOf(SdError);
      expect((err as Error).message).toMatch(
        /no directory \/efi in the image to mount partition 1 \(esp, vfat\)/,
      );
    } else {
      expect(err).toBeInstanceOf(ImageError);
      expect((err as ImageError).code).toBe('NO_KERNEL_SUPPORT');
      expect((err as Error).message).toMatch(
        /partition 1 \(esp, vfat\): the running kernel has no vfat driver/,
      );
    }
    noLeftovers(dir);
  });

  it('mounts read-only when asked', () => {
    const dir = join(s.dir, 'mnt-ro');
    const m = mountImage(full, dir, { mkdir: true, readOnly: true, skip: ['esp'] });
    live.push(m);
    expect(m.loop.readOnly).toBe(true);
    expect(mountsOf(dir).every((x) => x.options.startsWith('ro'))).toBe(true);
    m.release();
    live.pop();
    noLeftovers(dir);
  });

  it('MBR: the bootable 0x83 partition is root', () => {
    const path = join(s.dir, 'mbr.raw');
    makeImage(
      path,
      'dos',
      [
        { type: '82', sizeMiB: 4, fs: 'swap' },
        { type: '83', sizeMiB: 16, fs: 'ext4', bootable: true, files: { 'etc/hostname': 'mbr\n' } },
      ],
      s.dir,
    );
    const img = dissectImage(path);
    expect(img.table).toBe('mbr');
    expect(img.roles.root?.number).toBe(2);
    expect(img.partitions[0]?.fs?.type).toBe('swap');
    const dir = join(s.dir, 'mnt-mbr');
    const m = mountImage(path, dir, { mkdir: true });
    live.push(m);
    expect(readFileSync(join(dir, 'etc/hostname'), 'utf8')).toBe('mbr\n');
    m.release();
    live.pop();
    noLeftovers(dir);
  });

  it('bare file systems (ext4, squashfs) are root', () => {
    for (const fs of ['ext4', 'squashfs'] as const) {
      const path = join(s.dir, `bare-${fs}.raw`);
      run('truncate', ['-s', String(16 * MiB), path]);
      mkfsAt(path, 0, 16 * MiB, fs, { 'etc/os-release': `ID=${fs}\n` }, s.dir);
      const img = dissectImage(path);
      expect(img.table).toBe('none');
      expect(img.roles.root).toMatchObject({ number: null, fs: { type: fs } });
      const dir = join(s.dir, `mnt-bare-${fs}`);
      const m = mountImage(path, dir, { mkdir: true });
      live.push(m);
      expect(readFileSync(join(dir, 'etc/os-release'), 'utf8')).toBe(`ID=${fs}\n`);
      expect(mountsOf(dir)[0]!.options.startsWith(fs === 'squashfs' ? 'ro' : 'rw')).toBe(true);
      m.release();
      live.pop();
      noLeftovers(dir);
    }
  });

  it('4096-byte sectors', () => {
    const path = join(s.dir, '4k.raw');
    makeImage(
      path,
      'gpt',
      [
        { type: T.root, sizeMiB: 16, fs: 'ext4', files: { 'etc/os-release': 'ID=4k\n' } },
        { type: T.home, sizeMiB: 16, fs: 'ext4', files: { 'bob/x': 'x\n' } },
      ],
      s.dir,
      4096,
    );
    const img = dissectImage(path);
    expect(img.sectorSize).toBe(4096);
    expect(img.roles.root?.offset).toBe(MiB);
    expect(img.roles.home?.offset).toBe(17 * MiB);
    const dir = join(s.dir, 'mnt-4k');
    const m = mountImage(path, dir, { mkdir: true });
    live.push(m);
    expect(readFileSync(join(dir, 'etc/os-release'), 'utf8')).toBe('ID=4k\n');
    expect(readFileSync(join(dir, 'home/bob/x'), 'utf8')).toBe('x\n');
    m.release();
    live.pop();
    noLeftovers(dir);
  });

  it('a read-only root without the mount point for /home fails cleanly', () => {
    const path = join(s.dir, 'ro-root.raw');
    makeImage(
      path,
      'gpt',
      [
        { type: T.root, sizeMiB: 8, fs: 'squashfs', files: { 'etc/os-release': 'ID=ro\n' } },
        { type: T.home, sizeMiB: 16, fs: 'ext4' },
      ],
      s.dir,
    );
    const dir = join(s.dir, 'mnt-ro-root');
    expect(() => mountImage(path, dir, { mkdir: true })).toThrow(
      /no directory \/home in the image to mount partition 2 \(home, ext4\) on, and it cannot be made/,
    );
    noLeftovers(dir);
  });
});

describe('mount points symlinked inside a hostile image', () => {
  it('a /home and /srv that link to host directories are never mounted over on the host', () => {
    // Host directories the image's links aim at, absolute and climbing out with ../
    const canaries = [join(s.dir, 'canary-home'), join(s.dir, 'canary-srv')];
    for (const c of canaries) {
      mkdirSync(c, { recursive: true });
      writeFileSync(join(c, 'mark'), 'host\n');
    }
    const path = join(s.dir, 'planted-mountpoints.raw');
    makeImage(
      path,
      'gpt',
      [
        {
          type: T.root,
          sizeMiB: 16,
          fs: 'ext4',
          files: {
            'etc/os-release': 'ID=planted\n',
            home: `->${canaries[0]}`,
            srv: `->../../../../../../..${canaries[1]}`,
          },
        },
        { type: T.home, sizeMiB: 16, fs: 'ext4', files: { 'alice/hello': 'hi\n' } },
        { type: T.srv, sizeMiB: 16, fs: 'ext4', files: { 'www/index.html': 'srv\n' } },
      ],
      s.dir,
    );
    const dir = join(s.dir, 'mnt-planted');
    let mounted: MountedImage | undefined;
    let error: unknown;
    try {
      mounted = mountImage(path, dir, { mkdir: true });
      live.push(mounted);
    } catch (e) {
      error = e;
    }
    // Resolved inside the image, the links name directories it lacks: a clear error, or
    // (were the directories there) mounts inside it; never the host's directories.
    if (error) expect(String(error)).toMatch(/no directory \/(home|srv) in the image/);
    for (const m of mounted?.mounts ?? [])
      expect(m.path === dir || m.path.startsWith(`${dir}/`), m.path).toBe(true);
    for (const c of canaries) {
      expect(mountsOf(c)).toEqual([]);
      expect(readdirSync(c)).toEqual(['mark']);
    }
    if (mounted) {
      live.pop();
      mounted.release();
    }
    noLeftovers(dir);
  });
});

describe('sd-dissect', () => {
  const cli = (args: string[]) =>
    spawnSync('node', [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });

  it('prints the table, JSON, and mounts/unmounts through the CLI leaving nothing behind', () => {
    const table = cli([full]);
    expect(table.status).toBe(0);
    expect(table.stdout).toMatch(/^RW DESIGNATOR PARTITION UUID +PARTITION LABEL FSTYPE/m);
    expect(table.stdout).toMatch(/^ro home .* xfs /m);
    const json = JSON.parse(cli(['--json=short', full]).stdout);
    expect(json.mounts.map((m: { designator: string }) => m.designator).sort()).toEqual([
      'esp',
      'home',
      'root',
      'srv',
      'usr',
      'var',
    ]);
    expect(cli(['--no-legend', full]).stdout.split('\n')[0]).toMatch(/^rw esp /);

    const path = join(s.dir, 'cli.raw');
    makeImage(
      path,
      'gpt',
      [{ type: T.root, sizeMiB: 16, fs: 'ext4', files: { 'etc/os-release': 'ID=cli\n' } }],
      s.dir,
    );
    const dir = join(s.dir, 'mnt-cli');
    const m = cli(['--mount', '--mkdir', path, dir]);
    expect(m.stderr).toBe('');
    expect(m.status).toBe(0);
    expect(readFileSync(join(dir, 'etc/os-release'), 'utf8')).toBe('ID=cli\n');
    const [loop] = loopsOf(s.dir);
    expect(loop).toMatch(/^\/dev\/loop\d+$/);
    expect(existsSync(`${loop}p1`)).toBe(true);
    const u = cli(['--umount', dir]);
    expect(u.stderr).toBe('');
    expect(u.status).toBe(0);
    noLeftovers(dir);
    // Detached with its partition: the device no longer has our file behind it, nor a p1 of ours.
    const backing = `/sys/block/${loop!.slice(5)}/loop/backing_file`;
    expect(existsSync(backing) ? readFileSync(backing, 'utf8').trim() : '').not.toBe(path);
    expect(existsSync(backing) || !existsSync(`${loop}p1`)).toBe(true);
  });

  it('exit codes and messages for bad images and bad usage', () => {
    const bad = join(s.dir, 'bad.raw');
    execFileSync('cp', ['--sparse=always', full, bad]);
    execFileSync('dd', [
      'if=/dev/zero',
      `of=${bad}`,
      'bs=1',
      'seek=528',
      'count=4',
      'conv=notrunc',
      'status=none',
    ]);
    const r = cli([bad]);
    expect(r.status).toBe(65);
    expect(r.stderr).toMatch(/bad\.raw: primary GPT header \(LBA 1\): header CRC32 mismatch/);
    expect(cli([join(s.dir, 'missing.raw')]).status).toBe(66);
    const zero = join(s.dir, 'zero.raw');
    run('truncate', ['-s', '1M', zero]);
    const z = cli([zero]);
    expect(z.status).toBe(65);
    expect(z.stderr).toMatch(/neither a partition table/);
    expect(cli([]).status).toBe(1);
    expect(cli(['--json=yaml', full]).status).toBe(1);
    expect(cli(['--umount', join(s.dir, 'nothing-mounted')]).status).toBe(1);
    expect(fullParts).toHaveLength(6);
  });
});

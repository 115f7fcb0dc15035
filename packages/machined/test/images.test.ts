import { execFileSync } from 'node:child_process';
import {
  chownSync,
  linkSync,
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
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerOrSkip } from '../../../tools/test/require.js';
import { ImagePool, makeImage, UINT64_MAX } from '../src/images/index.js';
import { imagePoolPaths } from '../src/images/paths.js';
import { exists, have, type LoopFs, makeLoopFs, run } from './lib/fs-images.js';

const root = process.getuid?.() === 0;
const canBtrfs =
  root && !peerOrSkip(have('mkfs.btrfs') && have('btrfs') ? undefined : 'btrfs-progs is not installed');

/** A small tree with the things a copy must keep. */
function fillTree(dir: string): void {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  mkdirSync(join(dir, 'usr/lib'), { recursive: true });
  writeFileSync(join(dir, 'etc/hostname'), '# comment\nimg-host\n');
  writeFileSync(join(dir, 'etc/machine-id'), '0123456789abcdef0123456789abcdef\n');
  writeFileSync(
    join(dir, 'usr/lib/os-release'),
    'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
  );
  symlinkSync('../usr/lib/os-release', join(dir, 'etc/os-release'));
  writeFileSync(join(dir, 'etc/machine-info'), 'PRETTY_HOSTNAME="My Image"\n');
  writeFileSync(join(dir, 'secret'), 'x'.repeat(100_000), { mode: 0o600 });
  chownSync(join(dir, 'secret'), 1234, 5678);
  writeFileSync(join(dir, 'suid'), '#!/bin/sh\n', { mode: 0o4755 });
  execFileSync('chmod', ['4755', join(dir, 'suid')]);
  linkSync(join(dir, 'secret'), join(dir, 'hardlink'));
  symlinkSync('/etc/shadow', join(dir, 'abs-link'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  execFileSync('mknod', [join(dir, 'null'), 'c', '1', '3']);
  execFileSync('setfattr', ['-n', 'user.test', '-v', 'hello', join(dir, 'secret')], { stdio: 'ignore' });
}

/** path → [type, mode, uid, gid, size, link target, content hash] for every entry. */
function describeTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${e}` : e;
      const p = join(dir, r);
      const st = lstatSync(p);
      let extra = '';
      if (st.isSymbolicLink()) extra = readlinkSync(p);
      else if (st.isFile()) extra = readFileSync(p).toString('base64').slice(0, 40) + st.size;
      else if (st.isCharacterDevice()) extra = String(st.rdev);
      out[r] = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${Math.floor(st.mtimeMs)} ${extra}`;
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

describe.skipIf(!canBtrfs)('image pool on btrfs', () => {
  let top: string;
  let fs: LoopFs | undefined;
  let pool: ImagePool;
  let machines: string;
  let settings: string;

  beforeAll(() => {
    top = mkdtempSync(join(tmpdir(), 'sd-images-btrfs-'));
    machines = join(top, 'var/lib/machines');
    fs = makeLoopFs('btrfs', machines, 512);
    settings = join(top, 'etc/systemd/nspawn');
    mkdirSync(settings, { recursive: true });
    pool = new ImagePool({ root: top });
    run('btrfs', ['subvolume', 'create', join(machines, 'base')]);
    fillTree(join(machines, 'base'));
    writeFileSync(join(settings, 'base.nspawn'), '[Exec]\nBoot=yes\n');
    writeFileSync(join(machines, 'base.nspawn'), '[Files]\nReadOnly=no\n');
  });
  afterAll(() => {
    fs?.dispose();
    if (top) rmSync(top, { recursive: true, force: true });
  });

  it('lists the subvolume and the host image', async () => {
    const list = await pool.list();
    expect(list.map((i) => [i.name, i.type])).toEqual([
      ['.host', 'directory'],
      ['base', 'subvolume'],
    ]);
    const base = list[1]!;
    expect(base.readOnly).toBe(false);
    expect(base.crtime).toBeGreaterThan(0n);
    expect(base.mtime).toBeGreaterThan(0n);
    expect(base.usage).toBe(UINT64_MAX); // quota is off
  });

  it('clones a subvolume as a snapshot that shares its extents, with its .nspawn files', async () => {
    const t0 = performance.now();
    const method = await pool.cloneWithMethod('base', 'snap', false);
    const ms = performance.now() - t0;
    expect(method).toBe('snapshot');
    expect(ms).toBeLessThan(2000);
    const show = run('btrfs', ['subvolume', 'show', join(machines, 'snap')]);
    const baseUuid = /^\s*UUID:\s*(\S+)/m.exec(
      run('btrfs', ['subvolume', 'show', join(machines, 'base')]),
    )![1];
    expect(/Parent UUID:\s*(\S+)/.exec(show)![1]).toBe(baseUuid);
    // Shared extents: filefrag flags them as "shared".
    expect(run('filefrag', ['-v', join(machines, 'snap/secret')])).toMatch(/shared/);
    expect(describeTree(join(machines, 'snap'))).toEqual(describeTree(join(machines, 'base')));
    expect(readFileSync(join(settings, 'snap.nspawn'), 'utf8')).toContain('Boot=yes');
    expect(readFileSync(join(machines, 'snap.nspawn'), 'utf8')).toContain('ReadOnly=no');
    expect((await pool.get('snap'))?.type).toBe('subvolume');
  });

  // Each test makes the images it works on (and removes them): none relies on another having run.
  it('clones read-only with the btrfs flag, and marks images read-only and back', async () => {
    await pool.clone('base', 'ro', true);
    expect(run('btrfs', ['property', 'get', '-ts', join(machines, 'ro'), 'ro']).trim()).toBe('ro=true');
    expect((await pool.get('ro'))?.readOnly).toBe(true);
    await pool.clone('base', 'mark', false);
    await pool.markReadOnly('mark', true);
    expect(run('btrfs', ['property', 'get', '-ts', join(machines, 'mark'), 'ro']).trim()).toBe('ro=true');
    expect((await pool.get('mark'))?.readOnly).toBe(true);
    await pool.markReadOnly('mark', false);
    expect((await pool.get('mark'))?.readOnly).toBe(false);
    await pool.remove('mark');
    await pool.remove('ro');
  });

  it('renames an image with its .nspawn files', async () => {
    await pool.clone('base', 'torename', false);
    await pool.rename('torename', 'renamed');
    expect(exists(join(machines, 'torename'))).toBe(false);
    expect((await pool.get('renamed'))?.path).toBe(join(machines, 'renamed'));
    expect(exists(join(settings, 'torename.nspawn'))).toBe(false);
    expect(readFileSync(join(settings, 'renamed.nspawn'), 'utf8')).toContain('Boot=yes');
    expect(exists(join(machines, 'renamed.nspawn'))).toBe(true);
    await expect(pool.rename('renamed', 'base')).rejects.toMatchObject({ code: 'EEXIST' });
    await pool.remove('renamed');
  });

  it('removes images (read-only ones too) with their .nspawn files', async () => {
    await pool.clone('base', 'doomed', false);
    await pool.clone('base', 'doomed-ro', true);
    expect(exists(join(settings, 'doomed.nspawn'))).toBe(true);
    await pool.remove('doomed');
    await pool.remove('doomed-ro');
    expect(exists(join(machines, 'doomed'))).toBe(false);
    expect(exists(join(settings, 'doomed.nspawn'))).toBe(false);
    expect(exists(join(machines, 'doomed.nspawn'))).toBe(false);
    expect(run('btrfs', ['subvolume', 'list', machines])).not.toMatch(/doomed/);
    await expect(pool.remove('doomed')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(pool.remove('.host')).rejects.toMatchObject({ code: 'EROFS' });
  });

  it('clones a plain directory into a new subvolume with reflinks', async () => {
    mkdirSync(join(machines, 'plain'));
    fillTree(join(machines, 'plain'));
    expect((await pool.get('plain'))?.type).toBe('directory');
    expect(await pool.cloneWithMethod('plain', 'plain2', false)).toBe('subvolume+copy');
    expect((await pool.get('plain2'))?.type).toBe('subvolume');
    expect(describeTree(join(machines, 'plain2'))).toEqual(describeTree(join(machines, 'plain')));
    expect(run('filefrag', ['-v', join(machines, 'plain2/secret')])).toMatch(/shared/);
    await pool.remove('plain2');
  });

  it('sets quota limits on subvolumes and the pool, and refuses them elsewhere', async () => {
    await pool.setLimit('base', 64n * 1024n * 1024n);
    const base = await pool.get('base');
    expect(base?.limit).toBe(64n * 1024n * 1024n);
    expect(base?.usage).toBeGreaterThan(0n);
    expect(base?.usage).not.toBe(UINT64_MAX);
    await pool.setLimit('base', UINT64_MAX);
    expect((await pool.get('base'))?.limit).toBe(UINT64_MAX);
    await pool.setPoolLimit(256n * 1024n * 1024n);
    expect(await pool.poolLimit()).toBe(256n * 1024n * 1024n);
    expect(await pool.poolUsage()).toBeGreaterThan(0n);
    mkdirSync(join(machines, 'plain-dir'));
    await expect(pool.setLimit('plain-dir', 1n << 20n)).rejects.toMatchObject({ code: 'EOPNOTSUPP' });
    await pool.remove('plain-dir');
  });

  it('cleans hidden images only, then all writable ones', async () => {
    await pool.clone('base', '.hidden', false);
    await pool.clone('base', 'keep-ro', true);
    const writable = (await pool.list())
      .filter((i) => !i.readOnly && i.name !== '.host' && !i.name.startsWith('.'))
      .map((i) => i.name)
      .sort();
    expect(writable).toContain('base');
    const hidden = await pool.clean('hidden');
    expect(hidden.map((r) => r.name)).toEqual(['.hidden']);
    const all = await pool.clean('all');
    expect(all.map((r) => r.name).sort()).toEqual(writable);
    expect((await pool.list()).map((i) => i.name)).toEqual(['.host', 'keep-ro']);
    await pool.remove('keep-ro');
  });
});

describe.skipIf(!root)('image pool on ext4', () => {
  let top: string;
  let fs: LoopFs | undefined;
  let pool: ImagePool;
  let machines: string;

  beforeAll(() => {
    top = mkdtempSync(join(tmpdir(), 'sd-images-ext4-'));
    machines = join(top, 'var/lib/machines');
    fs = makeLoopFs('ext4', machines, 128);
    rmSync(join(machines, 'lost+found'), { recursive: true });
    pool = new ImagePool({ root: top });
    mkdirSync(join(machines, 'tree'));
    fillTree(join(machines, 'tree'));
    mkdirSync(join(top, 'etc/systemd/nspawn'), { recursive: true });
    writeFileSync(join(top, 'etc/systemd/nspawn/tree.nspawn'), '[Exec]\n');
  });
  afterAll(() => {
    fs?.dispose();
    if (top) rmSync(top, { recursive: true, force: true });
  });

  it('clones a directory by copying contents, modes, owners, links, devices and xattrs', async () => {
    expect(await pool.cloneWithMethod('tree', 'copy', false)).toBe('copy');
    const src = join(machines, 'tree');
    const dst = join(machines, 'copy');
    expect(describeTree(dst)).toEqual(describeTree(src));
    expect(statSync(join(dst, 'secret')).ino).toBe(statSync(join(dst, 'hardlink')).ino);
    expect(statSync(join(dst, 'suid')).mode & 0o7777).toBe(0o4755);
    expect(run('getfattr', ['--only-values', '-n', 'user.test', join(dst, 'secret')])).toBe('hello');
    expect(exists(join(top, 'etc/systemd/nspawn/copy.nspawn'))).toBe(true);
    expect(readdirSync(machines).filter((n) => n.startsWith('.#'))).toEqual([]);
  });

  it('marks a directory read-only with the immutable flag and still removes it', async () => {
    await pool.markReadOnly('copy', true);
    expect(run('lsattr', ['-d', join(machines, 'copy')])).toMatch(/^\S*i\S*\s/);
    expect((await pool.get('copy'))?.readOnly).toBe(true);
    await pool.rename('copy', 'copy2');
    expect(run('lsattr', ['-d', join(machines, 'copy2')])).toMatch(/^\S*i\S*\s/);
    await pool.remove('copy2');
    expect(exists(join(machines, 'copy2'))).toBe(false);
    expect(exists(join(top, 'etc/systemd/nspawn/copy2.nspawn'))).toBe(false);
  });

  it('refuses limits on ext4 with a clear error', async () => {
    await expect(pool.setLimit('tree', 1n << 20n)).rejects.toThrow(/Quota is only supported on btrfs/);
    await expect(pool.setPoolLimit(1n << 20n)).rejects.toThrow(/Quota is only supported on btrfs/);
    expect(await pool.poolUsage()).toBe(UINT64_MAX);
  });

  it('handles raw images: clone, read-only by mode, no metadata yet', async () => {
    writeFileSync(join(machines, 'disk.raw'), Buffer.alloc(1 << 20, 7));
    // Listed by its name without .raw; a file named only ".raw" names no image (the listing
    // refuses the empty name, and makeImage, which findImage calls too, makes none of it).
    writeFileSync(join(machines, '.raw'), Buffer.alloc(4096));
    const raws = (await pool.list()).filter((i) => i.type === 'raw').map((i) => i.name);
    expect(makeImage(machines, '.raw', imagePoolPaths(top))).toBeUndefined();
    rmSync(join(machines, '.raw'));
    expect(raws).toEqual(['disk']);
    const img = await pool.get('disk');
    expect(img).toMatchObject({ type: 'raw', readOnly: false, limit: 1n << 20n });
    await pool.clone('disk', 'disk2', true);
    const st = statSync(join(machines, 'disk2.raw'));
    expect(st.mode & 0o222).toBe(0);
    expect(readFileSync(join(machines, 'disk2.raw')).equals(readFileSync(join(machines, 'disk.raw')))).toBe(
      true,
    );
    expect((await pool.get('disk2'))?.readOnly).toBe(true);
    await expect(pool.hostname('disk')).rejects.toThrow(/not supported yet/);
    await pool.remove('disk2');
    await pool.remove('disk');
  });

  it('reads metadata inside the image without following its links out', async () => {
    expect(await pool.hostname('tree')).toBe('img-host');
    expect((await pool.machineId('tree')).toString('hex')).toBe('0123456789abcdef0123456789abcdef');
    expect(await pool.machineInfo('tree')).toEqual({ PRETTY_HOSTNAME: 'My Image' });
    expect((await pool.osRelease('tree')).VERSION_ID).toBe('12');
    // Links to a host file that parses (ID=LEAK), absolute and climbing: both resolve inside the image.
    const leak = join(top, 'paths-leak-os-release');
    writeFileSync(leak, 'ID=LEAK\nVERSION_ID=666\n');
    rmSync(join(machines, 'tree/etc/os-release'));
    symlinkSync(leak, join(machines, 'tree/etc/os-release'));
    rmSync(join(machines, 'tree/usr/lib/os-release'));
    symlinkSync(`../../../../../../../../..${leak}`, join(machines, 'tree/usr/lib/os-release'));
    expect(await pool.osRelease('tree')).toEqual({});
    rmSync(join(machines, 'tree/etc/machine-info'));
    symlinkSync(leak, join(machines, 'tree/etc/machine-info'));
    expect(await pool.machineInfo('tree')).toEqual({});
  });

  it('reads no device node or FIFO at a metadata path: a host loop device stays unread', async () => {
    const secret = 'ID=LEAK\nHOSTNAME=paths-secret\n';
    const victim = join(top, 'paths-victim.img');
    writeFileSync(victim, Buffer.concat([Buffer.from(secret), Buffer.alloc((1 << 20) - secret.length)]));
    const loop = execFileSync('losetup', ['--find', '--show', victim], { encoding: 'utf8' }).trim();
    try {
      const minor = /loop(\d+)$/.exec(loop)![1]!;
      const etc = join(machines, 'tree/etc');
      const usrLib = join(machines, 'tree/usr/lib');
      for (const f of [
        `${etc}/os-release`,
        `${usrLib}/os-release`,
        `${etc}/machine-info`,
        `${etc}/hostname`,
      ]) {
        rmSync(f, { force: true });
        execFileSync('mknod', ['-m', '0666', f, 'b', '7', minor]);
      }
      rmSync(`${etc}/machine-id`, { force: true });
      execFileSync('mkfifo', [`${etc}/machine-id`]);
      const started = Date.now();
      expect(await pool.osRelease('tree')).toEqual({});
      expect(await pool.machineInfo('tree')).toEqual({});
      expect(await pool.hostname('tree')).toBe('');
      expect((await pool.machineId('tree')).length).toBe(0);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      execFileSync('losetup', ['-d', loop]);
    }
  });

  it('refuses bad names, naming them', async () => {
    for (const bad of ['', '.', '..', 'a/b', '.#tmp', 'x\ny', 'a'.repeat(256)]) {
      await expect(pool.get(bad)).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(pool.clone('tree', bad, false)).rejects.toThrow(/is invalid/);
    }
    await expect(pool.rename('tree', '../evil')).rejects.toThrow(/"\.\.\/evil" is invalid/);
    await expect(pool.get('nope')).resolves.toBeUndefined();
    await expect(pool.clone('nope', 'x', false)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ImagePool } from '@sd/machined';
import { isSubvolume } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importTar } from '../src/index.js';
import { archive, chunks } from './archive.js';

const haveBtrfs = spawnSync('mkfs.btrfs', ['--version']).status === 0;

describe.skipIf(!haveBtrfs)('a pool on btrfs', () => {
  let dir: string;
  let pool: ImagePool;
  beforeAll(() => {
    dir = mkdtempSync(`${tmpdir()}/imp-btrfs-`);
    execFileSync('truncate', ['-s', '256M', `${dir}/fs.img`]);
    execFileSync('mkfs.btrfs', ['-q', `${dir}/fs.img`]);
    execFileSync('mkdir', [`${dir}/mnt`]);
    // -o loop: the loop device goes away with the unmount (autoclear).
    execFileSync('mount', ['-o', 'loop', `${dir}/fs.img`, `${dir}/mnt`]);
    const poolDir = `${dir}/mnt/machines`;
    pool = new ImagePool({
      paths: { searchPath: [poolDir], poolDir, settingsDirs: [], hostRoot: '/', vendorPrefix: '' },
    });
  });
  afterAll(() => {
    spawnSync('umount', [`${dir}/mnt`]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('imports as a subvolume, and a failed import leaves no subvolume behind', async () => {
    const r = await importTar(chunks(archive([{ path: 'etc/os-release', data: 'ID=imp\n' }])), 'imp-sub', {
      pool,
    });
    expect(isSubvolume(r.path)).toBe(true);
    expect((await pool.get('imp-sub'))?.type).toBe('subvolume');
    const bad = archive([
      { path: 'a', data: 'x' },
      { path: '../evil', data: 'y' },
    ]);
    await expect(importTar(chunks(bad), 'imp-sub2', { pool })).rejects.toThrow(/"\.\."/);
    expect(readdirSync(pool.poolPath)).toEqual(['imp-sub']);
    await pool.remove('imp-sub');
  });
});

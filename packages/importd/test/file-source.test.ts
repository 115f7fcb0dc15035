import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import { SdError } from '@sd/sys';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveError, fileSource, importTar } from '../src/index.js';
import { archive, chunks, type Spec } from './archive.js';
import { snapshotTree } from './tree.js';

/**
 * A plain tar in a regular file takes another path than a stream: reads
 * at known offsets, and what of a file runs past a read goes from the
 * archive into the file with sendfile, those bytes skipped by the reads.
 * The tree must be the same as through a stream, byte for byte and in
 * every attribute; failures must still leave nothing.
 */

let root: string;
let pool: ImagePool;

beforeAll(() => {
  root = mkdtempSync(`${tmpdir()}/tar5-filesrc-`);
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));
afterEach(async () => {
  for (const img of await pool.list()) if (img.name.startsWith('tar5-')) await pool.remove(img.name);
});

const xattrs = (o: Record<string, string>) => new Map(Object.entries(o).map(([k, v]) => [k, Buffer.from(v)]));

function mixed(): Spec[] {
  const sizes = [1, 511, 512, 513, 16383, 16384, 65535, 65536, 100_000, 300_000, 5 << 20];
  const specs: Spec[] = [
    { path: '.', type: 'directory', mode: 0o755, mtime: { sec: 999n, nsec: 0 } },
    { path: 'd', type: 'directory', mode: 0o750, mtime: { sec: 1000n, nsec: 5 } },
    { path: 'deep', type: 'directory', mtime: { sec: 1001n, nsec: 0 } },
    { path: 'deep/er', type: 'directory', mtime: { sec: 1002n, nsec: 0 } },
  ];
  for (const n of sizes)
    specs.push({ path: `d/f${n}`, data: randomBytes(n), mtime: { sec: BigInt(n), nsec: 7 } });
  specs.push(
    { path: 'empty', data: '' },
    {
      path: 'd/owned',
      data: randomBytes(200_000),
      mode: 0o4755,
      uid: 1234,
      gid: 5678,
      xattrs: xattrs({ 'user.big': 'on a big file', 'trusted.t': 'x' }),
      mtime: { sec: 1234567890n, nsec: 123456789 },
    },
    { path: 'hard', type: 'hardlink', linkname: 'd/owned' },
    // Big files a later entry of the same name replaces.
    { path: 'again', data: randomBytes(3 << 20) },
    { path: 'again', type: 'symlink', linkname: 'd/f1' },
    { path: 'twice', data: randomBytes(2 << 20) },
    { path: 'twice', data: 'small now' },
    { path: 'deep/er/big', data: randomBytes(1 << 20), mode: 0o600 },
    { path: 'last', data: randomBytes(700_000) },
  );
  return specs;
}

async function importVia(
  how: 'stream' | 'file',
  data: Buffer,
  name: string,
  p = pool,
): Promise<{ path: string; progress: number }> {
  const file = `${root}/${name}.tar`;
  writeFileSync(file, data);
  let progress = 0;
  const r = await importTar(how === 'stream' ? chunks(data, 100_003) : fileSource(file), name, {
    pool: p,
    onProgress: (n) => {
      progress = n;
    },
  });
  rmSync(file);
  return { path: r.path, progress };
}

describe('a plain tar from a regular file', () => {
  it('gives the tree a stream gives', async () => {
    const data = archive(mixed());
    const viaStream = await importVia('stream', data, 'tar5-stream');
    const viaFile = await importVia('file', data, 'tar5-file');
    expect(snapshotTree(viaFile.path)).toEqual(snapshotTree(viaStream.path));
    // Progress counts every byte of input, also those left out of the reads.
    for (const r of [viaStream, viaFile]) expect(r.progress).toBe(data.length);
    expect(readFileSync(`${viaFile.path}/twice`, 'utf8')).toBe('small now');
  });

  it('refuses an archive cut inside a file sendfile moves, with nothing left', async () => {
    const t = archive([
      { path: 'a', data: 'x' },
      { path: 'big', data: randomBytes(3 << 20) },
    ]);
    const file = `${root}/cut.tar`;
    writeFileSync(file, t.subarray(0, 2048 + (1 << 20)));
    await expect(importTar(fileSource(file), 'tar5-cut', { pool })).rejects.toThrow(ArchiveError);
    expect(readdirSync(pool.poolPath).filter((n) => n.startsWith('.#') || n.startsWith('tar5-'))).toEqual([]);
  });
});

describe('a plain tar from a regular file into a full pool', () => {
  it('fails with ENOSPC from sendfile and leaves nothing', async () => {
    const small = mkdtempSync(`${tmpdir()}/tar5-full-`);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tar5-full', small]);
    try {
      const p = new ImagePool({ paths: { ...imagePoolPaths(small), poolDir: small, searchPath: [small] } });
      const data = archive([
        { path: 'a', data: 'x' },
        { path: 'big', data: randomBytes(16 << 20) },
        { path: 'z', data: 'y' },
      ]);
      const err = await importVia('file', data, 'tar5-full', p).catch((e) => e);
      expect(err).toBeInstanceOf(SdError);
      expect((err as SdError).code).toBe('ENOSPC');
      expect(readdirSync(small)).toEqual([]);
    } finally {
      execFileSync('umount', [small]);
      rmSync(small, { recursive: true, force: true });
    }
  });
});

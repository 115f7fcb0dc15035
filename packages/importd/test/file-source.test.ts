import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import { SdError } from '@sd/sys';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { asyncData } from '../src/extract/pending.js';
import { ArchiveError, fileSource, importTar } from '../src/index.js';
import { archive, chunks, type Spec } from './archive.js';
import { snapshotTree } from './tree.js';

/**
 * A plain tar in a regular file takes another path than a stream: big
 * files' data goes from the archive into the file with sendfile, on a
 * libuv pool thread while the main thread goes on with the next entries,
 * and the reads skip those bytes. The tree must be the same as through a
 * stream, byte for byte and in every attribute, whichever way each file
 * went; failures must still leave nothing.
 */

let root: string;
let pool: ImagePool;
const saved = { ...asyncData };

beforeAll(() => {
  root = mkdtempSync(`${tmpdir()}/tar5-filesrc-`);
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));
afterEach(async () => {
  Object.assign(asyncData, saved);
  for (const img of await pool.list()) if (img.name.startsWith('tar5-')) await pool.remove(img.name);
});

/** Every file through the pool thread, whatever its size and the load. */
function allAsync(): void {
  asyncData.min = 1;
  asyncData.ignoreLoad = true;
}

/** No file through the pool thread: data runs through the chunks, and past a chunk's end a synchronous sendfile. */
function noAsync(): void {
  asyncData.min = Number.MAX_SAFE_INTEGER;
}

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
    // A big file whose data is still moving when a later entry of the same name replaces it.
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
  it('gives the tree a stream gives, with data moved on a pool thread or not', async () => {
    const data = archive(mixed());
    const viaStream = await importVia('stream', data, 'tar5-stream');
    allAsync();
    const viaPool = await importVia('file', data, 'tar5-pool');
    noAsync();
    const viaSync = await importVia('file', data, 'tar5-sync');
    const want = snapshotTree(viaStream.path);
    expect(snapshotTree(viaPool.path)).toEqual(want);
    expect(snapshotTree(viaSync.path)).toEqual(want);
    // Progress counts every byte of input, also those left out of the reads.
    for (const r of [viaStream, viaPool, viaSync]) expect(r.progress).toBe(data.length);
    expect(readFileSync(`${viaPool.path}/twice`, 'utf8')).toBe('small now');
  });

  it('gets the whole of the last files, whose copies outlive the reads', async () => {
    // The reads end (and a file source closes its fd) while the last files' sendfiles still run or wait for a thread.
    allAsync();
    const big = Array.from({ length: 6 }, () => randomBytes(6 << 20));
    const r = await importVia(
      'file',
      archive(big.map((data, i) => ({ path: `big${i}`, data }))),
      'tar5-last',
    );
    for (const [i, data] of big.entries()) expect(readFileSync(`${r.path}/big${i}`).equals(data)).toBe(true);
  });

  it('refuses an archive cut inside a file moved on a pool thread, with nothing left', async () => {
    allAsync();
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
  it('fails with ENOSPC from a pool thread and leaves nothing', async () => {
    const small = mkdtempSync(`${tmpdir()}/tar5-full-`);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tar5-full', small]);
    try {
      allAsync();
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

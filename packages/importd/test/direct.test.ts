import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveError, fileSource, importTar } from '../src/index.js';
import { archive } from './archive.js';

/**
 * A plain .tar in a regular file: data of files that run past the chunk
 * read is moved into the file by sendfile, not through a buffer. The
 * content must be the same, and a truncated archive still refused.
 */

let root: string;
let pool: ImagePool;
const big = randomBytes(5 << 20);
const mid = randomBytes(700 << 10);

beforeAll(() => {
  root = mkdtempSync(`${tmpdir()}/importd-direct-`);
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

const tar = () =>
  archive([
    { path: 'a', data: 'small' },
    { path: 'mid', data: mid },
    { path: 'big', data: big },
    { path: 'mid2', data: mid },
    { path: 'z', data: 'end' },
  ]);

describe('plain tar from a file', () => {
  it('moves big files with sendfile and gets every byte right', async () => {
    writeFileSync(`${root}/a.tar`, tar());
    let progress = 0;
    const r = await importTar(fileSource(`${root}/a.tar`), 'importd-direct', {
      pool,
      onProgress: (n) => {
        progress = n;
      },
    });
    expect(readFileSync(`${r.path}/big`).equals(big)).toBe(true);
    expect(readFileSync(`${r.path}/mid`).equals(mid)).toBe(true);
    expect(readFileSync(`${r.path}/mid2`).equals(mid)).toBe(true);
    expect(readFileSync(`${r.path}/z`, 'utf8')).toBe('end');
    expect(progress).toBe(tar().length);
  });

  it('refuses an archive cut inside a big file, with nothing left', async () => {
    const t = tar();
    const cut = t.subarray(0, 2048 + (3 << 20));
    writeFileSync(`${root}/cut.tar`, cut);
    await expect(importTar(fileSource(`${root}/cut.tar`), 'importd-direct-cut', { pool })).rejects.toThrow(
      ArchiveError,
    );
    expect(readdirSync(pool.poolPath).filter((n) => n !== 'importd-direct')).toEqual([]);
  });
});

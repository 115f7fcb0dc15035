import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Compression, exportRaw, exportTar, fileSource, importRaw, importTar } from '../src/index.js';
import { makeTree, snapshotTree } from './tree.js';

const FORMATS: Compression[] = ['uncompressed', 'xz', 'gzip', 'bzip2', 'zstd'];

async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function* from(b: Buffer, chunk = 100_003): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += chunk) yield b.subarray(i, i + chunk);
}

describe('export-tar → import-tar round trips (as root, real files)', () => {
  let root: string;
  let pool: ImagePool;
  beforeAll(() => {
    root = mkdtempSync(`${tmpdir()}/imp-rt-`);
    pool = new ImagePool({ paths: imagePoolPaths(root) });
    mkdirSync(pool.poolPath, { recursive: true });
    makeTree(`${pool.poolPath}/imp-src`);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  for (const format of FORMATS) {
    it(`keeps owners, modes, links, hard links, xattrs and mtimes (${format})`, async () => {
      const archive = await collect(await exportTar('imp-src', { pool, format }));
      const r = await importTar(from(archive), `imp-${format}`, { pool });
      expect(r.compression).toBe(format);
      expect(snapshotTree(r.path)).toEqual(snapshotTree(`${pool.poolPath}/imp-src`));
      expect((await pool.get(`imp-${format}`))?.type).toBe('directory');
      expect(readdirSync(pool.poolPath).filter((n) => n.startsWith('.#'))).toEqual([]);
    });
  }

  it('reads what GNU tar writes (pax, xattrs incl. binary security.capability)', async () => {
    const archive = execFileSync(
      'tar',
      [
        '--xattrs',
        '--xattrs-include=*',
        '--format=pax',
        '--numeric-owner',
        '-C',
        `${pool.poolPath}/imp-src`,
        '-cf',
        '-',
        '.',
      ],
      { maxBuffer: 1 << 26 },
    );
    const r = await importTar(from(archive, 4096), 'imp-gnutar', { pool });
    const got = snapshotTree(r.path);
    const want = snapshotTree(`${pool.poolPath}/imp-src`);
    // GNU tar stores whole seconds for the mtime unless asked otherwise... and pax keeps ns: compare all.
    expect(got.map((n) => ({ ...n, mtimeNs: n.mtimeNs / 1_000_000_000n }))).toEqual(
      want.map((n) => ({ ...n, mtimeNs: n.mtimeNs / 1_000_000_000n })),
    );
  });

  it('writes what GNU tar reads back identically', async () => {
    const archive = await collect(await exportTar('imp-src', { pool, format: 'xz' }));
    const dir = `${root}/gnu-x`;
    mkdirSync(dir);
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', dir, '-xJpf', '-'], {
      input: archive,
    });
    expect(snapshotTree(dir)).toEqual(snapshotTree(`${pool.poolPath}/imp-src`));
  });

  it('refuses an existing name unless forced; --read-only marks the image', async () => {
    const archive = await collect(await exportTar('imp-src', { pool, format: 'zstd' }));
    await expect(importTar(from(archive), 'imp-src', { pool })).rejects.toThrow(/exists/);
    const r = await importTar(from(archive), 'imp-forced', { pool, readOnly: true });
    expect((await pool.get('imp-forced'))?.readOnly).toBe(true);
    await pool.markReadOnly('imp-forced', false);
    await importTar(from(archive), 'imp-forced', { pool, force: true });
    expect(snapshotTree(r.path)).toEqual(snapshotTree(`${pool.poolPath}/imp-src`));
  });
});

describe('export-raw → import-raw', () => {
  let root: string;
  let pool: ImagePool;
  beforeAll(() => {
    root = mkdtempSync(`${tmpdir()}/imp-raw-`);
    pool = new ImagePool({ paths: imagePoolPaths(root) });
    mkdirSync(pool.poolPath, { recursive: true });
    // 64 MiB, mostly holes, data at the start, middle and end.
    const img = `${pool.poolPath}/imp-disk.raw`;
    execFileSync('truncate', ['-s', '64M', img]);
    execFileSync('dd', [`if=/dev/urandom`, `of=${img}`, 'bs=64K', 'count=3', 'conv=notrunc', 'status=none']);
    execFileSync('dd', [
      `if=/dev/urandom`,
      `of=${img}`,
      'bs=4K',
      'count=5',
      'seek=7001',
      'conv=notrunc',
      'status=none',
    ]);
    execFileSync('dd', [
      `if=/dev/urandom`,
      `of=${img}`,
      'bs=1',
      'count=100',
      `seek=${64 * 1024 * 1024 - 100}`,
      'conv=notrunc',
      'status=none',
    ]);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  for (const format of FORMATS) {
    it(`is bit-identical and sparse (${format})`, async () => {
      const data = await collect(await exportRaw('imp-disk', { pool, format }));
      const r = await importRaw(from(data, 1 << 20), `imp-disk-${format}`, { pool });
      expect(r.path).toBe(`${pool.poolPath}/imp-disk-${format}.raw`);
      execFileSync('cmp', [`${pool.poolPath}/imp-disk.raw`, r.path]);
      const st = statSync(r.path);
      expect(st.size).toBe(64 * 1024 * 1024);
      // Allocated: the data written (~220 KiB), far below the apparent size.
      expect(st.blocks * 512).toBeLessThan(1024 * 1024);
      expect((await pool.get(`imp-disk-${format}`))?.type).toBe('raw');
    });
  }

  it('imports from a file source', async () => {
    const r = await importRaw(fileSource(`${pool.poolPath}/imp-disk.raw`), 'imp-disk-file', { pool });
    execFileSync('cmp', [`${pool.poolPath}/imp-disk.raw`, r.path]);
  });
});

import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import { SdError } from '@sd/sys';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compress, fileSource, importTar, paxRecord } from '../src/index.js';
import { archive, chunks, fixChecksum, headerWithSize, paxThen } from './archive.js';

let root: string;
let pool: ImagePool;
let outside: string;

function listAll(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = `${d}/${n}`;
      out.push(p);
      if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

/** Nothing outside the pool changed, and no temporary image is left in it. */
function assertContained(): void {
  expect(listAll(outside)).toEqual([`${outside}/sentinel`]);
  expect(readdirSync(root).sort()).toEqual(['outside', 'var']);
  expect(readdirSync(pool.poolPath).filter((n) => n.startsWith('.#'))).toEqual([]);
  expect(existsSync('/imp-abs')).toBe(false);
}

/** Refused as a stream, and from a regular file (reads at offsets, sendfile for data past a read). */
async function refused(data: Buffer, match: RegExp, name = 'imp-hostile'): Promise<void> {
  await expect(importTar(chunks(data), name, { pool })).rejects.toThrow(match);
  expect(await pool.get(name)).toBeUndefined();
  assertContained();
  const file = `${root}/hostile.tar`;
  writeFileSync(file, data);
  try {
    await expect(importTar(fileSource(file), name, { pool })).rejects.toThrow(match);
  } finally {
    rmSync(file);
  }
  expect(await pool.get(name)).toBeUndefined();
  assertContained();
}

beforeAll(() => {
  root = mkdtempSync(`${tmpdir()}/imp-hostile-`);
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
  outside = `${root}/outside`;
  mkdirSync(outside);
  execFileSync('touch', [`${outside}/sentinel`]);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));
afterEach(async () => {
  for (const img of await pool.list()) if (img.name.startsWith('imp-')) await pool.remove(img.name);
});

describe('hostile archives: refused or contained, nothing outside the target', () => {
  it('refuses path traversal with ..', async () => {
    await refused(archive([{ path: '../../outside/evil', data: 'x' }]), /"\.\." component/);
    await refused(archive([{ path: 'a/../../../outside/evil', data: 'x' }]), /"\.\." component/);
  });

  it('contains absolute paths inside the image', async () => {
    const r = await importTar(
      chunks(
        archive([
          { path: '/imp-abs', data: 'x' },
          { path: `${outside}/evil`, data: 'y' },
        ]),
      ),
      'imp-abs',
      { pool },
    );
    expect(existsSync(`${r.path}/imp-abs`)).toBe(true);
    expect(existsSync(`${r.path}${outside}/evil`)).toBe(true);
    assertContained();
  });

  it('creates absolute and escaping symlinks as links, never following them', async () => {
    const r = await importTar(
      chunks(
        archive([
          { path: 'abs', type: 'symlink', linkname: outside },
          { path: 'up', type: 'symlink', linkname: '../../../../..' },
        ]),
      ),
      'imp-links',
      { pool },
    );
    expect(readlinkSync(`${r.path}/abs`)).toBe(outside);
    expect(readlinkSync(`${r.path}/up`)).toBe('../../../../..');
    assertContained();
  });

  it('refuses a file written through an absolute symlink', async () => {
    await refused(
      archive([
        { path: 'abs', type: 'symlink', linkname: outside },
        { path: 'abs/evil', data: 'x' },
      ]),
      /through a symlink/,
    );
  });

  it('refuses a file written through an escaping relative symlink', async () => {
    await refused(
      archive([
        { path: 'up', type: 'symlink', linkname: `../../../../../../..${outside}` },
        { path: 'up/evil', data: 'x' },
      ]),
      /through a symlink/,
    );
  });

  it('refuses a directory and a symlink created through a symlink', async () => {
    await refused(
      archive([
        { path: 'abs', type: 'symlink', linkname: outside },
        { path: 'abs/d', type: 'directory' },
      ]),
      /through a symlink/,
    );
    await refused(
      archive([
        { path: 'abs', type: 'symlink', linkname: outside },
        { path: 'abs/l', type: 'symlink', linkname: '/' },
      ]),
      /through a symlink/,
    );
  });

  it('keeps a big file sendfile fills apart from a symlink that replaces it', async () => {
    // The data goes into the file opened for it, never by name: never through the symlink.
    const file = `${root}/moving.tar`;
    writeFileSync(
      file,
      archive([
        { path: 'x', data: Buffer.alloc(4 << 20, 0x61) },
        { path: 'x', type: 'symlink', linkname: `${outside}/sentinel` },
        { path: 'y', type: 'hardlink', linkname: 'x' },
      ]),
    );
    try {
      const r = await importTar(fileSource(file), 'imp-moving', { pool });
      expect(readlinkSync(`${r.path}/x`)).toBe(`${outside}/sentinel`);
      // A hard link to a symlink links the symlink itself.
      expect(lstatSync(`${r.path}/y`).isSymbolicLink()).toBe(true);
    } finally {
      rmSync(file);
    }
    expect(readFileSync(`${outside}/sentinel`, 'utf8')).toBe('');
    assertContained();
  });

  it('refuses hard links out of the tree', async () => {
    await refused(
      archive([{ path: 'hl', type: 'hardlink', linkname: `${outside}/sentinel` }]),
      /not in the tree/,
    );
    await refused(
      archive([{ path: 'hl', type: 'hardlink', linkname: '../../outside/sentinel' }]),
      /"\.\." component/,
    );
    await refused(
      archive([
        { path: 'abs', type: 'symlink', linkname: outside },
        { path: 'hl', type: 'hardlink', linkname: 'abs/sentinel' },
      ]),
      /through a symlink/,
    );
  });

  it('makes hard links to entries inside the tree', async () => {
    const r = await importTar(
      chunks(
        archive([
          { path: 'a', data: 'x' },
          { path: 'b', type: 'hardlink', linkname: './a' },
        ]),
      ),
      'imp-hl',
      { pool },
    );
    expect(lstatSync(`${r.path}/a`).ino).toBe(lstatSync(`${r.path}/b`).ino);
  });

  it('leaves device nodes out unless allowed', async () => {
    const dev = archive([
      { path: 'null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
      { path: 'f', data: 'x' },
    ]);
    const r = await importTar(chunks(dev), 'imp-dev', { pool });
    expect(existsSync(`${r.path}/null`)).toBe(false);
    expect(existsSync(`${r.path}/f`)).toBe(true);
    await expect(importTar(chunks(dev), 'imp-dev2', { pool, devices: 'refuse' })).rejects.toThrow(
      /device nodes are not allowed/,
    );
    assertContained();
    const ok = await importTar(chunks(dev), 'imp-dev3', { pool, devices: 'allow' });
    expect(lstatSync(`${ok.path}/null`).isCharacterDevice()).toBe(true);
  });

  it('refuses huge and negative sizes', async () => {
    const huge = Buffer.alloc(12, 0xff);
    huge[0] = 0x80;
    await refused(Buffer.concat([headerWithSize('f', huge), Buffer.alloc(1024)]), /size .* out of range/);
    await refused(
      Buffer.concat([headerWithSize('f', Buffer.alloc(12, 0xff)), Buffer.alloc(1024)]),
      /Negative size/,
    );
    await refused(
      Buffer.concat([headerWithSize('f', Buffer.from('-0000000001\0')), Buffer.alloc(1024)]),
      /Invalid octal size/,
    );
    await refused(paxThen(paxRecord('size', '-5')), /Invalid PAX size/);
    await refused(paxThen(paxRecord('size', '99999999999999999')), /Invalid PAX size|out of range/);
    // A size larger than the data that follows: a truncated archive.
    await refused(paxThen(paxRecord('size', '1000000')), /truncated/);
  });

  it('refuses truncated streams, plain and compressed', async () => {
    const a = archive([
      { path: 'f', data: Buffer.alloc(100_000, 1) },
      { path: 'g', data: 'x' },
    ]);
    await refused(a.subarray(0, 50_000), /truncated/);
    await refused(a.subarray(0, a.length - 1024), /truncated/);
    await refused(a.subarray(0, 300), /truncated/);
    for (const f of ['xz', 'gzip', 'bzip2', 'zstd'] as const) {
      const parts: Buffer[] = [];
      for await (const c of compress(f, chunks(a))) parts.push(Buffer.from(c));
      const z = Buffer.concat(parts);
      await refused(z.subarray(0, Math.floor(z.length / 2)), /truncated|unexpected end/);
    }
  });

  it('refuses PAX header abuse', async () => {
    await refused(paxThen(Buffer.from('999 path=x\n')), /runs past/);
    await refused(paxThen(Buffer.from('0 path=x\n')), /Malformed PAX record length/);
    await refused(paxThen(Buffer.from('abc path=x\n')), /Malformed PAX record length/);
    await refused(paxThen(Buffer.from('11 pathxxx\n')), /no key/);
    await refused(paxThen(Buffer.from('10 path=xx!')), /no newline/);
    await refused(paxThen(paxRecord('path', '../../outside/evil')), /"\.\." component/);
    const abs = await importTar(chunks(paxThen(paxRecord('path', `${outside}/pax`))), 'imp-pax-abs', {
      pool,
    });
    expect(existsSync(`${abs.path}${outside}/pax`)).toBe(true);
    assertContained();
    await refused(paxThen(paxRecord('GNU.sparse.map', '0,1')), /GNU sparse/);
    await refused(paxThen(paxRecord('SCHILY.xattr.', 'x')), /Invalid xattr name/);
    await refused(paxThen(paxRecord('path', Buffer.from([0xff, 0xfe]))), /not valid UTF-8/);
    await refused(paxThen(paxRecord('mtime', '1e9')), /Invalid PAX mtime/);
    // An extended header bigger than the limit.
    const big = Buffer.concat([paxRecord('comment', Buffer.alloc(2 * 1024 * 1024, 0x61))]);
    await refused(paxThen(big), /larger than the limit/);
    // An extended header with no entry after it.
    const lone = paxThen(paxRecord('path', 'x')).subarray(0, 1024);
    await refused(Buffer.concat([lone, Buffer.alloc(1024)]), /without its entry/);
  });

  it('refuses garbage and bad checksums', async () => {
    const a = archive([{ path: 'f', data: 'x' }]);
    a[0] = 0x41;
    await refused(a, /checksum/);
    const b = archive([{ path: 'f', data: 'x' }]);
    b[156] = 'S'.charCodeAt(0);
    fixChecksum(b, 0);
    await refused(b, /Unsupported tar entry type "S"/);
    await refused(
      Buffer.from('this is not an archive at all, not even close'.repeat(20)),
      /checksum|truncated/,
    );
  });

  it('refuses names the kernel would refuse: a component over 255 bytes, a path over PATH_MAX', async () => {
    await refused(paxThen(paxRecord('path', 'a'.repeat(256))), /longer than 255 bytes/);
    // 86 three-byte characters: 258 bytes in only 86 UTF-16 units.
    await refused(paxThen(paxRecord('path', '\u20ac'.repeat(86))), /longer than 255 bytes/);
    // 20 components of 240 bytes: 4820 bytes in 1620 UTF-16 units.
    await refused(paxThen(paxRecord('path', Array(20).fill('\u20ac'.repeat(80)).join('/'))), /PATH_MAX/);
    // 85 of them (255 bytes) are fine.
    const ok = await importTar(chunks(paxThen(paxRecord('path', '\u20ac'.repeat(85)))), 'imp-name-255', {
      pool,
    });
    expect(existsSync(`${ok.path}/${'\u20ac'.repeat(85)}`)).toBe(true);
    assertContained();
  });

  it('refuses a file that would replace a directory', async () => {
    await refused(
      archive([
        { path: 'd', type: 'directory' },
        { path: 'd/x', data: 'x' },
        { path: 'd', data: 'y' },
      ]),
      /replace a directory/,
    );
    // The extractor keeps parent directory fds open: a parent it holds cannot be swapped for a symlink.
    await refused(
      archive([
        { path: 'd', type: 'directory' },
        { path: 'd/x', data: 'x' },
        { path: 'e/y', data: 'y' },
        { path: 'd', type: 'symlink', linkname: outside },
        { path: 'd/evil', data: 'z' },
      ]),
      /replace a directory/,
    );
  });
});

describe('decompression bomb larger than the pool', () => {
  it('fails with ENOSPC and leaves nothing', async () => {
    const small = mkdtempSync(`${tmpdir()}/imp-bomb-`);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'imp-bomb', small]);
    try {
      const p = new ImagePool({ paths: { ...imagePoolPaths(small), poolDir: small, searchPath: [small] } });
      const zeros = archive([{ path: 'f', data: Buffer.alloc(64 * 1024 * 1024) }]);
      const parts: Buffer[] = [];
      for await (const c of compress('zstd', chunks(zeros, 1 << 20))) parts.push(Buffer.from(c));
      const bomb = Buffer.concat(parts);
      expect(bomb.length).toBeLessThan(100_000);
      const err = await importTar(chunks(bomb), 'imp-bomb', { pool: p }).catch((e) => e);
      expect(err).toBeInstanceOf(SdError);
      expect((err as SdError).code).toBe('ENOSPC');
      expect(readdirSync(small)).toEqual([]);
    } finally {
      execFileSync('umount', [small]);
      rmSync(small, { recursive: true, force: true });
    }
  });
});

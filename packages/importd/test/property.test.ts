import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import { SdError } from '@sd/sys';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../tools/test/fuzz.js';
import { END_OF_ARCHIVE, type EntryType, encodeHeader, importTar, paddingFor } from '../src/index.js';
import { chunks, entry, fixChecksum, type Spec } from './archive.js';

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

beforeAll(() => {
  root = mkdtempSync(`${tmpdir()}/imp-prop-`);
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
  outside = `${root}/outside`;
  mkdirSync(outside);
  execFileSync('touch', [`${outside}/sentinel`]);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The archive plus where its header blocks start, so mutations can keep checksums valid. */
function build(specs: Spec[]): { data: Buffer; headers: number[] } {
  const parts: Buffer[] = [];
  const headers: number[] = [];
  let off = 0;
  for (const s of specs) {
    const e = entry(s);
    const h = encodeHeader(e);
    for (let i = 0; i < h.length; i += 512) headers.push(off + i);
    parts.push(h);
    off += h.length;
    if (e.type === 'file' && e.size > 0) {
      const d = Buffer.from(s.data ?? Buffer.alloc(e.size));
      parts.push(d, Buffer.alloc(paddingFor(d.length)));
      off += d.length + paddingFor(d.length);
    }
  }
  parts.push(END_OF_ARCHIVE);
  return { data: Buffer.concat(parts), headers };
}

/** Runs one import and checks the invariants whatever its outcome. */
async function check(data: Buffer, name: string): Promise<void> {
  let error: unknown;
  try {
    await importTar(chunks(data, 1000), name, { pool });
  } catch (e) {
    error = e;
  }
  // Refusals are SdErrors with a code, never a TypeError or a crash.
  if (error !== undefined && !(error instanceof SdError)) throw error;
  expect(listAll(outside)).toEqual([`${outside}/sentinel`]);
  expect(readdirSync(root).sort()).toEqual(['outside', 'var']);
  expect(existsSync('/tmp/imp-escape')).toBe(false);
  const left = readdirSync(pool.poolPath);
  expect(left.filter((n) => n.startsWith('.#'))).toEqual([]);
  if (error === undefined) {
    expect(left).toEqual([name]);
    await pool.remove(name);
  } else {
    expect(left).toEqual([]);
  }
}

const base: Spec[] = [
  { path: './', type: 'directory', mode: 0o755 },
  { path: 'etc/', type: 'directory' },
  { path: 'etc/os-release', data: 'ID=imp\n', xattrs: new Map([['user.x', Buffer.from([0, 255, 128])]]) },
  { path: 'bin', type: 'symlink', linkname: 'usr/bin' },
  { path: 'usr/bin/tool', data: Buffer.alloc(1500, 9), mode: 0o4755 },
  { path: 'usr/bin/tool2', type: 'hardlink', linkname: 'usr/bin/tool' },
  { path: `${'long/'.repeat(30)}name`, data: 'deep' },
];

describe('property: mutated archives are refused or imported, never escape', () => {
  it('byte mutations, with header checksums kept valid or not, and truncations', async () => {
    const { data, headers } = build(base);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ pos: fc.nat(data.length - 1), byte: fc.integer({ min: 0, max: 255 }) }), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.boolean(),
        fc.option(fc.nat(data.length), { nil: undefined }),
        async (edits, fix, cut) => {
          const m = Buffer.from(data);
          for (const { pos, byte } of edits) m[pos] = byte;
          if (fix)
            for (const h of headers) if (m.subarray(h, h + 512).some((b) => b !== 0)) fixChecksum(m, h);
          await check(cut === undefined ? m : m.subarray(0, cut), `imp-m${n++}`);
        },
      ),
      { numRuns: fuzzRuns(300) },
    );
  });

  const component = fc.constantFrom('a', 'b', '..', '.', '', 'etc', 'x'.repeat(3));
  const pathArb = fc.oneof(
    fc.array(component, { minLength: 1, maxLength: 4 }).map((c) => c.join('/')),
    fc.constantFrom(
      '/',
      '/etc/passwd',
      '../outside/evil',
      'a/../../outside',
      '/tmp/imp-escape',
      'OUT',
      'OUT/evil',
    ),
  );
  const typeArb = fc.constantFrom<EntryType>('file', 'directory', 'symlink', 'hardlink', 'fifo', 'char');

  it('random entry lists (names with .., absolute paths, links anywhere)', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ path: pathArb, type: typeArb, link: pathArb, data: fc.uint8Array({ maxLength: 700 }) }),
          { maxLength: 8 },
        ),
        async (list) => {
          const out = (p: string) => p.replace(/^OUT/, outside);
          const specs: Spec[] = list.map((e) => ({
            path: e.path === '' ? 'empty' : out(e.path),
            type: e.type,
            linkname:
              e.type === 'symlink' || e.type === 'hardlink' ? (e.link === '' ? 'a' : out(e.link)) : '',
            data: e.type === 'file' ? Buffer.from(e.data) : undefined,
            devmajor: 1,
            devminor: 3,
          }));
          await check(build(specs).data, `imp-r${n++}`);
        },
      ),
      { numRuns: fuzzRuns(300) },
    );
  });
});

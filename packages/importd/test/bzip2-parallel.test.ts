import { execFileSync } from 'node:child_process';
import { SdError } from '@sd/sys';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns, fuzzTimeout } from '../../../tools/test/fuzz.js';
import { bzip2Decoder } from '../src/compress/bzip2.js';
import { Bzip2Scanner, type Piece } from '../src/compress/bzip2-blocks.js';
import { bzip2DecodeParallel } from '../src/compress/bzip2-parallel.js';
import { transformWith } from '../src/compress/codec.js';
import { DecompressError } from '../src/errors.js';
import { chunks } from './archive.js';

/**
 * The parallel bzip2 decoder against the bzip2, lbzip2 and pbzip2 CLIs and
 * against libbz2's own sequential decoding: the same bytes out for every
 * file those tools make (many blocks, several streams, an empty stream,
 * blocks of long runs), a false block magic handled, and corrupt or
 * mutated input refused exactly when the sequential decoder refuses it.
 */

const have = (tool: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Text-like data: words from a small vocabulary, a deterministic PRNG (compresses like real files). */
function textish(bytes: number, seed = 1): Buffer {
  const words =
    'the quick brown fox jumps over lazy dog tar image pool systemd nspawn block stream magic'.split(' ');
  let a = seed;
  // mulberry32.
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
  const out: string[] = [];
  let n = 0;
  while (n < bytes) {
    const x = next();
    const w = words[x % words.length]!;
    // Numbers make it compress like text (about 3:1), not like a repeated phrase.
    const tail = ` ${(x >>> 7) % 100_000} `;
    out.push(w, tail);
    n += w.length + tail.length;
  }
  return Buffer.from(out.join('')).subarray(0, bytes);
}

const run = (cmd: string, input: Buffer) => execFileSync('sh', ['-c', cmd], { input, maxBuffer: 1 << 30 });

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(Buffer.from(b));
  return Buffer.concat(parts);
}

const parallel = (z: Buffer, opts: Parameters<typeof bzip2DecodeParallel>[1] = {}, chunk = 65536) =>
  collect(bzip2DecodeParallel(chunks(z, chunk), opts));
const sequential = (z: Buffer) => collect(transformWith(bzip2Decoder(), chunks(z, 65536), true));

/** Outcome as a comparable value: the bytes' length and hash, or "error". */
async function outcome(p: Promise<Buffer>): Promise<string> {
  try {
    const b = await p;
    return `ok ${b.length} ${b.toString('base64').slice(0, 64)} ${require_hash(b)}`;
  } catch (e) {
    if (!(e instanceof SdError)) throw e;
    return 'error';
  }
}
function require_hash(b: Buffer): string {
  return execFileSync('sha256sum', { input: b }).toString().slice(0, 16);
}

function pieces(z: Buffer): Piece[] {
  const s = new Bzip2Scanner();
  s.push(z);
  s.end();
  const out: Piece[] = [];
  for (;;) {
    const n = s.next();
    if (n === 'done') return out;
    if (n === 'more') throw new Error('scanner wants more after end');
    if (n.kind === 'piece') out.push(n);
  }
}

const data = textish(1_500_000);
/** bzip2 -1: 100 kB blocks, so about fifteen of them. */
const z1 = run('bzip2 -1 -c', data);

describe('parallel bzip2 decoding', () => {
  it('gives the bytes bzip2 made, with many blocks, in any chunking and window', async () => {
    expect(pieces(z1).length).toBeGreaterThan(10);
    for (const [window, chunk] of [
      [1, 1],
      [3, 4096],
      [8, 1 << 20],
    ] as const) {
      if (chunk === 1) {
        // One byte at a time: every boundary falls between chunks at some point.
        const small = run('bzip2 -1 -c', data.subarray(0, 250_000));
        expect((await parallel(small, { window }, 1)).equals(data.subarray(0, 250_000))).toBe(true);
        continue;
      }
      expect((await parallel(z1, { window }, chunk)).equals(data)).toBe(true);
    }
  });

  it.skipIf(!have('lbzip2') || !have('pbzip2'))(
    'reads lbzip2 and pbzip2 files (pbzip2: many streams)',
    async () => {
      const big = textish(3_000_000, 7);
      for (const cmd of ['lbzip2 -1 -n 2 -c', 'lbzip2 -9 -c', 'pbzip2 -1 -p2 -c', 'pbzip2 -9 -b1 -c']) {
        const z = run(cmd, big);
        expect((await parallel(z)).equals(big), cmd).toBe(true);
      }
      // pbzip2 writes one stream per block: the scanner sees them all.
      const multi = run('pbzip2 -1 -b1 -p2 -c', big);
      expect(pieces(multi).length).toBeGreaterThan(20);
    },
  );

  it('reads concatenated streams, an empty stream, and blocks of long runs', async () => {
    const a = data.subarray(0, 300_000);
    const b = textish(200_000, 3);
    const cat = Buffer.concat([
      run('bzip2 -1 -c', a),
      run('bzip2 -9 -c', Buffer.alloc(0)),
      run('bzip2 -3 -c', b),
    ]);
    expect((await parallel(cat)).equals(Buffer.concat([a, b]))).toBe(true);
    expect((await parallel(run('bzip2 -c', Buffer.alloc(0)))).length).toBe(0);
    // Zeros: a 100 kB block of runs decodes to 5 MB, more than the usual output buffer.
    const zeros = Buffer.alloc(12_000_000);
    zeros.fill(7, 5_000_000, 5_000_100);
    const zz = run('bzip2 -1 -c', zeros);
    for (const reuse of [false, true]) expect((await parallel(zz, { reuse })).equals(zeros)).toBe(true);
  });

  it(
    'joins the halves of a block cut by a false magic (fake splits), whatever their place',
    async () => {
      const bits = 8 * z1.length;
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(fc.integer({ min: 100, max: bits - 100 }), { minLength: 1, maxLength: 6 }),
          async (fakes) => {
            expect((await parallel(z1, { fakeSplits: fakes })).equals(data)).toBe(true);
          },
        ),
        { numRuns: fuzzRuns(30) },
      );
    },
    fuzzTimeout(120_000),
  );

  it('refuses broken streams with a DecompressError', async () => {
    const z = Buffer.from(z1);
    const refused = async (input: Buffer, re: RegExp) => {
      const e = await parallel(input).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DecompressError);
      expect((e as Error).message).toMatch(re);
    };
    await refused(z.subarray(0, z.length >> 1), /truncated/);
    await refused(z.subarray(0, z.length - 3), /truncated/);
    await refused(Buffer.concat([z, Buffer.from('garbage!garbage!')]), /garbage|corrupt|truncated/);
    await refused(Buffer.from('BZh0xxxxxxxxxxxxx'), /not a bzip2 stream/);
    // The combined CRC at the very end.
    const c = Buffer.from(z);
    c[c.length - 2]! ^= 0x10;
    await refused(c, /CRC|corrupt/);
    // A block's own CRC (right after the first block magic at byte 4).
    const d = Buffer.from(z);
    d[11]! ^= 0x01;
    await refused(d, /corrupt/);
  });

  it('gives up on a block longer than any bzip2 block, before reading all of it', async () => {
    // A header, a block magic and CRC, then 12 MB without another magic.
    const head = Buffer.from([0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59, 1, 2, 3, 4]);
    const noise = Buffer.alloc(12 * 1024 * 1024, 0x55);
    let read = 0;
    async function* src(): AsyncGenerator<Buffer> {
      for await (const c of chunks(Buffer.concat([head, noise]), 1 << 20)) {
        read += c.length;
        yield c;
      }
    }
    const e = await collect(bzip2DecodeParallel(src())).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DecompressError);
    expect((e as Error).message).toMatch(/no block boundary/);
    expect(read).toBeLessThan(7 * 1024 * 1024);
  });

  it(
    'agrees with sequential libbz2 on mutated input: the same bytes, or both refuse',
    async () => {
      const small = run('bzip2 -1 -c', data.subarray(0, 400_000));
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.nat({ max: small.length - 1 }), fc.integer({ min: 1, max: 255 })), {
            minLength: 1,
            maxLength: 4,
          }),
          fc.option(fc.nat({ max: small.length }), { nil: undefined }),
          async (flips, cut) => {
            const m = Buffer.from(small);
            for (const [at, x] of flips) m[at]! ^= x;
            const input = cut === undefined ? m : m.subarray(0, cut);
            expect(await outcome(parallel(input, { window: 3 }, 8192))).toBe(
              await outcome(sequential(input)),
            );
          },
        ),
        { numRuns: fuzzRuns(60) },
      );
    },
    fuzzTimeout(180_000),
  );

  it('reads the input only a window of blocks ahead of what was consumed', async () => {
    let read = 0;
    async function* counting(): AsyncGenerator<Buffer> {
      for await (const c of chunks(z1, 16384)) {
        read += c.length;
        yield c;
      }
    }
    const it = bzip2DecodeParallel(counting(), { window: 2 })[Symbol.asyncIterator]();
    await it.next();
    // Two blocks in flight and the one handed out, plus a chunk of look-ahead.
    expect(read).toBeLessThan(z1.length / 2);
    await it.return?.(undefined);
  });
});

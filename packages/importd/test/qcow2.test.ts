import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { deflateRawSync } from 'node:zlib';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import { SdError } from '@sd/sys';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../tools/test/fuzz.js';
import { fileSource, importRaw, Qcow2Error } from '../src/index.js';

/**
 * qcow2 → raw on import-raw/pull-raw: images made by a small writer here
 * (plain, deflate-compressed, zero-flagged and unallocated clusters) and by
 * qemu-img when it is installed come out bit-identical and sparse; hostile
 * headers and tables are refused with nothing left in the pool.
 */

let root: string;
let pool: ImagePool;

const CLUSTER_BITS = 12;
const CLUSTER = 1 << CLUSTER_BITS;

/**
 * A version 3 qcow2 of `raw` (a multiple of the cluster size): header in
 * cluster 0, L1 in cluster 1, then L2 tables and data. Clusters whose index
 * is in `compress` are stored deflated, in `zeroFlag` as "all zeros" entries;
 * all-zero clusters are left unallocated.
 */
function makeQcow2(raw: Buffer, compress = new Set<number>(), zeroFlag = new Set<number>()): Buffer {
  const clusters = raw.length / CLUSTER;
  const perL2 = CLUSTER / 8;
  const l2Count = Math.ceil(clusters / perL2);
  const parts: Buffer[] = [];
  const header = Buffer.alloc(CLUSTER);
  header.writeUInt32BE(0x514649fb, 0);
  header.writeUInt32BE(3, 4);
  header.writeUInt32BE(CLUSTER_BITS, 20);
  header.writeBigUInt64BE(BigInt(raw.length), 24);
  header.writeUInt32BE(l2Count, 36);
  header.writeBigUInt64BE(BigInt(CLUSTER), 40);
  header.writeUInt32BE(4, 96); // refcount_order
  header.writeUInt32BE(104, 100); // header_length
  const l1 = Buffer.alloc(CLUSTER);
  const l2s = Array.from({ length: l2Count }, () => Buffer.alloc(CLUSTER));
  let next = (2 + l2Count) * CLUSTER;
  const data: Buffer[] = [];
  l2s.forEach((_, i) => {
    l1.writeBigUInt64BE(BigInt((2 + i) * CLUSTER) | (1n << 63n), i * 8);
  });
  for (let c = 0; c < clusters; c++) {
    const chunk = raw.subarray(c * CLUSTER, (c + 1) * CLUSTER);
    const l2 = l2s[Math.floor(c / perL2)]!;
    const at = (c % perL2) * 8;
    if (zeroFlag.has(c)) {
      l2.writeBigUInt64BE(1n, at);
      continue;
    }
    if (chunk.equals(Buffer.alloc(CLUSTER))) continue;
    if (compress.has(c)) {
      const z = deflateRawSync(chunk);
      const padded = Buffer.alloc(Math.ceil(z.length / 512) * 512);
      z.copy(padded);
      const x = BigInt(62 - (CLUSTER_BITS - 8));
      const sectors = BigInt(padded.length / 512 - 1);
      l2.writeBigUInt64BE((1n << 62n) | (sectors << x) | BigInt(next), at);
      data.push(padded);
      next += padded.length;
      // Keep plain clusters aligned.
      const pad = (CLUSTER - (next % CLUSTER)) % CLUSTER;
      data.push(Buffer.alloc(pad));
      next += pad;
    } else {
      l2.writeBigUInt64BE(BigInt(next) | (1n << 63n), at);
      data.push(Buffer.from(chunk));
      next += CLUSTER;
    }
  }
  parts.push(header, l1, ...l2s, ...data);
  return Buffer.concat(parts);
}

/** 64 clusters: random data, zeros, text; a few compressed, one zero-flagged over data. */
function sampleRaw(): { raw: Buffer; expected: Buffer } {
  const raw = Buffer.alloc(64 * CLUSTER);
  randomBytes(10 * CLUSTER).copy(raw, 3 * CLUSTER);
  raw.fill('compressible text ', 20 * CLUSTER, 30 * CLUSTER);
  randomBytes(CLUSTER).copy(raw, 63 * CLUSTER);
  randomBytes(CLUSTER).copy(raw, 40 * CLUSTER);
  const expected = Buffer.from(raw);
  expected.fill(0, 40 * CLUSTER, 41 * CLUSTER); // cluster 40 is flagged zero
  return { raw, expected };
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

const leftovers = () => readdirSync(pool.poolPath).filter((n) => n.startsWith('.#'));

beforeAll(() => {
  root = mkdtempSync(`${tmpdir()}/importd-qcow2-`);
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('qcow2 images on import-raw', () => {
  it('converts plain, compressed, zero-flagged and unallocated clusters, bit-identical and sparse', async () => {
    const { raw, expected } = sampleRaw();
    const q = makeQcow2(raw, new Set([20, 21, 22, 63, 5]), new Set([40]));
    const r = await importRaw(once(q), 'importd-q1', { pool, log: () => {} });
    const out = readFileSync(r.path);
    expect(out.length).toBe(expected.length);
    expect(out.equals(expected)).toBe(true);
    // Unallocated and zero clusters are holes.
    expect(statSync(r.path).blocks * 512).toBeLessThan(30 * CLUSTER);
    expect(leftovers()).toEqual([]);
  });

  it('refuses hostile headers and tables, with nothing left', async () => {
    const { raw } = sampleRaw();
    const good = makeQcow2(raw, new Set([20]));
    const cases: Array<[string, (b: Buffer) => void, RegExp]> = [
      ['version 4', (b) => b.writeUInt32BE(4, 4), /version/],
      ['backing file', (b) => b.writeBigUInt64BE(512n, 8), /backing/],
      ['encryption', (b) => b.writeUInt32BE(1, 32), /encrypted/],
      ['cluster_bits 30', (b) => b.writeUInt32BE(30, 20), /cluster_bits/],
      ['huge size', (b) => b.writeBigUInt64BE(1n << 62n, 24), /size/],
      ['l1_size too small', (b) => b.writeUInt32BE(0, 36), /l1_size/],
      ['l1_size huge', (b) => b.writeUInt32BE(0x10000000, 36), /l1_size/],
      ['L1 past the end', (b) => b.writeBigUInt64BE(1n << 40n, 40), /L1 table/],
      ['corrupt bit', (b) => b.writeBigUInt64BE(2n, 72), /corrupt/],
      ['unknown incompatible feature', (b) => b.writeBigUInt64BE(1n << 20n, 72), /incompatible/],
      ['external data file', (b) => b.writeBigUInt64BE(4n, 72), /external/],
      ['L2 past the end', (b) => b.writeBigUInt64BE((1n << 40n) | (1n << 63n), CLUSTER), /outside the file/],
      ['L2 misaligned', (b) => b.writeBigUInt64BE(BigInt(2 * CLUSTER + 512), CLUSTER), /cluster boundary/],
      [
        'data cluster past the end',
        (b) => b.writeBigUInt64BE(1n << 40n, 2 * CLUSTER + 3 * 8),
        /past the end|outside/,
      ],
      [
        'shared L2 table',
        (b) => {
          b.writeUInt32BE(2, 36);
          b.writeBigUInt64BE(b.readBigUInt64BE(CLUSTER), CLUSTER + 8);
        },
        /used twice/,
      ],
      ['cluster past the virtual size', (b) => b.writeBigUInt64BE(BigInt(8 * CLUSTER), 24), /virtual size/],
      [
        'compressed cluster that does not inflate',
        (b) => {
          const e = b.readBigUInt64BE(2 * CLUSTER + 20 * 8);
          const host = Number(e & ((1n << 58n) - 1n));
          b.fill(0xff, host, host + 64);
        },
        /inflate/,
      ],
    ];
    for (const [what, edit, msg] of cases) {
      const b = Buffer.from(good);
      edit(b);
      const p = importRaw(once(b), `importd-qbad`, { pool });
      await expect(p, what).rejects.toThrow(Qcow2Error);
      await expect(p, what).rejects.toThrow(msg);
      expect(leftovers(), what).toEqual([]);
      expect(readdirSync(pool.poolPath).includes('importd-qbad.raw'), what).toBe(false);
    }
  });

  it('refuses a compressed cluster that inflates beyond the cluster size (a bomb)', async () => {
    const raw = Buffer.alloc(4 * CLUSTER, 1);
    const q = makeQcow2(raw, new Set([0]));
    const x = BigInt(62 - (CLUSTER_BITS - 8));
    const bomb = deflateRawSync(Buffer.alloc(1 << 20));
    const host = q.length;
    const sectors = BigInt(Math.ceil(bomb.length / 512) - 1);
    const l2At = 2 * CLUSTER;
    q.writeBigUInt64BE((1n << 62n) | (sectors << x) | BigInt(host), l2At);
    const file = Buffer.concat([q, bomb, Buffer.alloc(512)]);
    await expect(importRaw(once(file), 'importd-qbomb', { pool })).rejects.toThrow(/inflate/);
    expect(leftovers()).toEqual([]);
  });

  it('property: mutated images convert or fail with an SdError, never leaving a temporary file', async () => {
    const { raw } = sampleRaw();
    const good = makeQcow2(raw.subarray(0, 16 * CLUSTER), new Set([3, 4]), new Set([5]));
    // Mutations in the header, L1 and L2 tables (the parsed parts).
    const edit = fc.array(
      fc.record({ at: fc.integer({ min: 0, max: 3 * CLUSTER - 1 }), byte: fc.integer({ min: 0, max: 255 }) }),
      { minLength: 1, maxLength: 8 },
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(edit, async (edits) => {
        const b = Buffer.from(good);
        for (const { at, byte } of edits) b[at] = byte;
        const name = `importd-qprop${n++}`;
        try {
          const r = await importRaw(once(b), name, { pool });
          // Accepted: a raw image no larger than what the header may claim.
          expect(statSync(r.path).size).toBeLessThanOrEqual(2 ** 52);
          rmSync(r.path);
        } catch (e) {
          expect(e).toBeInstanceOf(SdError);
        }
        expect(leftovers()).toEqual([]);
      }),
      { numRuns: fuzzRuns(300) },
    );
  });

  it.skipIf(spawnSync('qemu-img', ['--version']).status !== 0)(
    'images made by qemu-img (plain and -c compressed, also inside .xz) come out bit-identical',
    async () => {
      const disk = `${root}/disk.raw`;
      execFileSync('truncate', ['-s', '32M', disk]);
      const blob = randomBytes(3 << 20);
      const fd = Buffer.concat([Buffer.alloc(1 << 20), blob]);
      writeFileSync(disk, fd, { flag: 'r+' });
      execFileSync('dd', [
        `if=${disk}`,
        `of=${disk}`,
        'bs=1M',
        'count=2',
        'seek=20',
        'conv=notrunc',
        'status=none',
      ]);
      const want = readFileSync(disk);
      for (const [tag, extra] of [
        ['plain', []],
        ['compressed', ['-c']],
      ] as const) {
        const q = `${root}/disk-${tag}.qcow2`;
        execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', ...extra, disk, q]);
        const r = await importRaw(fileSource(q), `importd-qemu-${tag}`, { pool });
        expect(readFileSync(r.path).equals(want), tag).toBe(true);
        expect(statSync(r.path).blocks * 512, tag).toBeLessThan(8 << 20);
      }
      execFileSync('xz', ['-k', '-T1', '-0', `${root}/disk-compressed.qcow2`]);
      const r = await importRaw(fileSource(`${root}/disk-compressed.qcow2.xz`), 'importd-qemu-xz', { pool });
      expect(readFileSync(r.path).equals(want)).toBe(true);
      expect(leftovers()).toEqual([]);
    },
  );
});

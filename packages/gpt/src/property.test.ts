import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdError } from '@sd/sys';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../tools/test/fuzz.js';
import { fakeExt4, fixEntriesCrc, fixHeaderCrc, writeGpt, writeMbr } from '../test/lib/gpt-writer.js';
import { dissectSource } from './dissect/dissect.js';
import type { DissectedImage } from './dissect/model.js';
import { planMounts } from './dissect/plan.js';
import { partitionTypeGuid } from './dps.js';
import { bufferSource } from './source.js';

// Hostile input: whatever a valid image is mutated into, dissecting it gives
// a result or an SdError — never another exception, a crash or a hang.

const MiB = 1024 * 1024;

function validImages(): Buffer[] {
  const out: Buffer[] = [];
  for (const ss of [512, 4096]) {
    const buf = Buffer.alloc(3 * MiB);
    const per = MiB / ss;
    writeGpt(
      buf,
      [
        { type: partitionTypeGuid('root', 'x86-64')!, first: per, last: 2 * per - 1, name: 'root' },
        { type: partitionTypeGuid('home')!, first: 2 * per, last: 2 * per + 8, attrs: 1n << 60n },
      ],
      { sectorSize: ss },
    );
    fakeExt4(buf, MiB);
    out.push(buf);
  }
  const mbr = Buffer.alloc(2 * MiB);
  writeMbr(mbr, [{ type: 0x83, start: 2048, count: 2048, bootable: true }]);
  fakeExt4(mbr, MiB);
  out.push(mbr);
  const bare = Buffer.alloc(MiB);
  fakeExt4(bare, 0);
  out.push(bare);
  return out;
}

const IMAGES = validImages();

/** Offsets worth hitting: the MBR, both GPT headers, both entry arrays, superblocks. */
function hotOffset(size: number): fc.Arbitrary<number> {
  return fc.oneof(
    fc.integer({ min: 0, max: 512 * 40 }),
    fc.integer({ min: 4096, max: 4096 * 8 }),
    fc.integer({ min: Math.max(0, size - 40 * 512), max: size - 1 }),
    fc.integer({ min: MiB, max: MiB + 2048 }),
    fc.integer({ min: 0, max: size - 1 }),
  );
}

type Mutation =
  | { kind: 'byte'; at: number; value: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'u64'; at: number; value: bigint }
  | { kind: 'truncate'; length: number };

function mutation(size: number): fc.Arbitrary<Mutation> {
  return fc.oneof(
    fc.record({
      kind: fc.constant('byte' as const),
      at: hotOffset(size),
      value: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({ kind: fc.constant('u32' as const), at: hotOffset(size - 8), value: fc.nat() }),
    fc.record({
      kind: fc.constant('u64' as const),
      at: hotOffset(size - 8),
      value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    }),
    fc.record({ kind: fc.constant('truncate' as const), length: fc.integer({ min: 0, max: size }) }),
  );
}

function apply(img: Buffer, muts: Mutation[], fixCrcs: boolean): Buffer {
  let buf = Buffer.from(img);
  for (const m of muts) {
    if (m.kind === 'truncate') buf = buf.subarray(0, Math.min(m.length, buf.length));
    else if (m.at + 8 > buf.length) continue;
    else if (m.kind === 'byte') buf[m.at] = m.value;
    else if (m.kind === 'u32') buf.writeUInt32LE(m.value >>> 0, m.at);
    else buf.writeBigUInt64LE(m.value, m.at);
  }
  // Re-sealing the CRCs lets the mutation reach the checks behind them.
  if (fixCrcs) {
    for (const ss of [512, 4096]) {
      if (buf.length < 2 * ss || buf.toString('latin1', ss, ss + 8) !== 'EFI PART') continue;
      try {
        fixEntriesCrc(buf, 1, ss);
      } catch {
        fixHeaderCrc(buf, 1, ss);
      }
    }
  }
  return buf;
}

/** What any accepted image must satisfy, however it was mutated. */
function expectSane(img: DissectedImage, size: number): void {
  const parts = [...img.partitions].sort((a, b) => a.offset - b.offset);
  for (const [i, p] of parts.entries()) {
    expect(p.offset, `partition ${p.number} starts inside the image`).toBeGreaterThanOrEqual(0);
    expect(p.size, `partition ${p.number} is not empty`).toBeGreaterThan(0);
    expect(p.offset + p.size, `partition ${p.number} ends inside the image`).toBeLessThanOrEqual(size);
    const next = parts[i + 1];
    if (next)
      expect(p.offset + p.size, `partitions ${p.number} and ${next.number} overlap`).toBeLessThanOrEqual(
        next.offset,
      );
  }
  for (const [role, p] of Object.entries(img.roles)) expect(img.partitions, role).toContain(p);
}

function outcome(buf: Buffer): 'ok' | 'error' {
  try {
    const img = dissectSource(bufferSource(buf, 'mutant'), { arch: 'x86-64' });
    JSON.stringify(img, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
    expectSane(img, buf.length);
    try {
      planMounts(img);
    } catch (e) {
      if (!(e instanceof SdError)) throw e;
    }
    return 'ok';
  } catch (e) {
    if (e instanceof SdError) return 'error';
    throw e;
  }
}

describe('dissecting mutated images', () => {
  it('the valid images dissect', () => {
    for (const img of IMAGES) expect(outcome(img)).toBe('ok');
  });

  for (const [i, img] of IMAGES.entries()) {
    it(`image ${i}: every mutation gives a sane result (inside the image, no overlaps) or an SdError`, () => {
      fc.assert(
        fc.property(
          fc.array(mutation(img.length), { minLength: 1, maxLength: 6 }),
          fc.boolean(),
          (muts, fix) => {
            // outcome() throws on anything else, and expectSane() on a result that breaks the invariants.
            outcome(apply(img, muts, fix));
          },
        ),
        { numRuns: fuzzRuns(400) },
      );
    });
  }
});

describe('random tables against sfdisk', () => {
  const TYPES = ['root', 'usr', 'home', 'srv', 'var', 'tmp', 'esp', 'swap', 'xbootldr'].map(
    (r) => partitionTypeGuid(r as never, 'x86-64') ?? partitionTypeGuid(r as never)!,
  );
  // 1..6 partitions: start gaps and lengths in sectors of an 8 MiB disk, laid out in order.
  const table = fc.array(
    fc.record({
      gap: fc.integer({ min: 0, max: 600 }),
      length: fc.integer({ min: 1, max: 2000 }),
      type: fc.constantFrom(...TYPES),
      uuid: fc.uuid({ version: 4 }),
      name: fc.string({ unit: fc.constantFrom(...'abc-_ XYZ019'), maxLength: 20 }),
    }),
    { minLength: 1, maxLength: 6 },
  );

  it('what we read is what was written, and what sfdisk reads', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-gpt-prop-'));
    try {
      fc.assert(
        fc.property(table, (parts) => {
          const buf = Buffer.alloc(8 * MiB);
          let at = 2048;
          const written = parts.map((p) => {
            const first = at + p.gap;
            at = first + p.length;
            return { type: p.type, uuid: p.uuid, name: p.name, first, last: first + p.length - 1 };
          });
          fc.pre(at <= 8 * 2048 - 34);
          writeGpt(buf, written);
          const file = join(dir, 'table.raw');
          writeFileSync(file, buf);
          const img = dissectSource(bufferSource(buf, 'table'), { arch: 'x86-64' });
          expectSane(img, buf.length);
          const ours = img.partitions.map((p) => ({
            start: p.offset / 512,
            size: p.size / 512,
            type: p.typeGuid!.toUpperCase(),
            uuid: p.uuid!.toUpperCase(),
            name: p.label ?? '',
          }));
          expect(ours).toEqual(
            written.map((w) => ({
              start: w.first,
              size: w.last - w.first + 1,
              type: w.type.toUpperCase(),
              uuid: w.uuid.toUpperCase(),
              name: w.name,
            })),
          );
          const sf = JSON.parse(execFileSync('sfdisk', ['--json', file], { encoding: 'utf8' })) as {
            partitiontable: {
              partitions: Array<{ start: number; size: number; type: string; uuid: string; name?: string }>;
            };
          };
          expect(
            sf.partitiontable.partitions.map((p) => ({
              start: p.start,
              size: p.size,
              type: p.type,
              uuid: p.uuid,
              name: p.name ?? '',
            })),
          ).toEqual(ours);
        }),
        { numRuns: fuzzRuns(25) },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

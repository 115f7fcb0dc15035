import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../tools/test/fuzz.js';
import { ArchiveError } from '../src/errors.js';
import { BLOCK, decodeHeader } from '../src/index.js';
import { isZeroBlock } from '../src/tar/header.js';
import { fixChecksum } from './archive.js';

/**
 * The header fast paths against the plain definitions: the four-bytes-a-step
 * checksum against a byte sum, at any offset and alignment of the block in
 * its buffer, and the zero-block test against a byte scan.
 */

const byteSum = (b: Buffer, off: number) => {
  let s = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) s += b[off + i]!;
  return s;
};

function checksumError(b: Buffer, off: number): boolean {
  try {
    decodeHeader(b, off);
    return false;
  } catch (e) {
    if (!(e instanceof ArchiveError)) throw e;
    return /Bad tar header checksum/.test(e.message);
  }
}

describe('tar header fast paths', () => {
  it('checks the checksum exactly as a byte sum does, wherever the block sits', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: BLOCK, maxLength: BLOCK }),
        fc.nat({ max: 7 }),
        fc.nat({ max: BLOCK - 1 }),
        (bytes, lead, flip) => {
          const b = Buffer.alloc(lead + BLOCK);
          Buffer.from(bytes).copy(b, lead);
          // A name and octal fields that parse, so only the checksum can fail.
          b.write('f\0', lead, 'latin1');
          for (const [at, len] of [
            [100, 8],
            [108, 8],
            [116, 8],
            [124, 12],
            [136, 12],
            [329, 8],
            [337, 8],
          ] as const)
            b.write(`${'0'.repeat(len - 1)}\0`, lead + at, 'latin1');
          fixChecksum(b, lead);
          expect(Number.parseInt(b.toString('latin1', lead + 148, lead + 154), 8)).toBe(byteSum(b, lead));
          // Other fields may be invalid (random names); only the checksum verdict is looked at.
          expect(checksumError(b, lead)).toBe(false);
          if (flip >= 148 && flip < 156) return;
          const before = byteSum(b, lead);
          b[lead + flip] = (b[lead + flip]! + 1) & 0xff;
          if (byteSum(b, lead) === before) return;
          // The signed sum old tars wrote may still match by chance: then it is accepted.
          const signedOk = (() => {
            let s = 0;
            for (let i = 0; i < BLOCK; i++) {
              const c = i >= 148 && i < 156 ? 0x20 : b[lead + i]!;
              s += c > 127 ? c - 256 : c;
            }
            return s === Number.parseInt(b.toString('latin1', lead + 148, lead + 154), 8);
          })();
          expect(checksumError(b, lead)).toBe(!signedOk);
        },
      ),
      { numRuns: fuzzRuns(2000) },
    );
  });

  it('finds zero blocks exactly', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: BLOCK - 1 }),
        fc.integer({ min: 0, max: 255 }),
        fc.nat({ max: 5 }),
        (at, v, lead) => {
          const b = Buffer.alloc(lead + BLOCK);
          b[lead + at] = v;
          expect(isZeroBlock(b, lead)).toBe(v === 0);
        },
      ),
      { numRuns: fuzzRuns(2000) },
    );
  });
});

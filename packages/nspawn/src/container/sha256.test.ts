import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sha256 } from './sha256.js';
import { candidateShift } from './userns.js';

const ref = (b: Uint8Array) => createHash('sha256').update(b).digest();

describe('sha256', () => {
  it('matches the FIPS 180-4 examples', () => {
    expect(sha256(Buffer.from('abc')).toString('hex')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    expect(sha256(Buffer.alloc(0)).toString('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
  });

  it('equals node:crypto for any input, across block boundaries', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        expect(sha256(b).equals(ref(b))).toBe(true);
      }),
      { numRuns: 500 },
    );
    for (let n = 50; n < 140; n++)
      expect(sha256(Buffer.alloc(n, n)).equals(ref(Buffer.alloc(n, n)))).toBe(true);
  });

  it('keeps the UID range a machine name picked before (node:crypto was used then)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 64 }), fc.nat(99), (machine, attempt) => {
        const h = ref(Buffer.from(`${machine}\0${attempt}`));
        expect(candidateShift(machine, attempt)).toBe(0x00080000 + (h.readUInt32LE(0) % 0x6ff7) * 0x10000);
      }),
    );
  });
});

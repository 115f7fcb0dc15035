import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../../tools/test/fuzz.js';
import { BusWireError, marshal, parseSignature, unmarshal } from './wire.js';
import { signatureArb, valueArb } from './wire-arbitraries.js';

// The wire format: values round-trip through marshal and unmarshal for any
// signature, and bytes from a hostile peer give a BusWireError, never
// another exception, a hang or a huge allocation.

describe('D-Bus wire format', () => {
  it('round-trips any value of any signature', () => {
    fc.assert(
      fc.property(
        signatureArb.chain((s) => valueArb(parseSignature(s)[0]!).map((v) => [s, v] as const)),
        ([sig, [value, back]]) => {
          expect(unmarshal(sig, marshal(sig, [value]))).toEqual([back]);
        },
      ),
      { numRuns: fuzzRuns(500) },
    );
  });

  it('turns any bytes into values or a BusWireError, nothing else', () => {
    fc.assert(
      fc.property(signatureArb, fc.uint8Array({ maxLength: 200 }), (sig, bytes) => {
        try {
          unmarshal(sig, Buffer.from(bytes));
        } catch (e) {
          expect(e).toBeInstanceOf(BusWireError);
        }
      }),
      { numRuns: fuzzRuns(2000) },
    );
  });

  it('takes the length of an array from the bytes only as far as they go', () => {
    // 2 GB announced, 4 bytes there: an error, not a 2 GB loop or allocation, nor a short array.
    const b = Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0]);
    expect(() => unmarshal('au', b)).toThrow(BusWireError);
    // 8 bytes of ay announced, 4 there: an error, never the 4 taken as the whole array.
    expect(() => unmarshal('ay', Buffer.from([8, 0, 0, 0, 1, 2, 3, 4]))).toThrow(/runs past the end/);
  });

  it('refuses an array its length says is over 64 MiB, whatever follows', () => {
    expect(() => unmarshal('au', Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0]))).toThrow(
      /array of 2147483647 bytes/,
    );
  });

  it('refuses variants nested deeper than the specification allows (a peer picks their depth)', () => {
    // Each level is a variant whose signature is "v"; the innermost holds the byte 7.
    const nested = (n: number) =>
      Buffer.concat([Buffer.from('017600'.repeat(n), 'hex'), Buffer.from('01790007', 'hex')]);
    expect(unmarshal('v', nested(10))).toHaveLength(1);
    expect(() => unmarshal('v', nested(70))).toThrow(/nests too deep/);
  });

  it('lays out values as the specification says', () => {
    // "s" then "t": the string's length, bytes and NUL, then padding to 8.
    expect(marshal('st', ['ab', 1n]).toString('hex')).toBe(`02000000616200${'00'}0100000000000000`);
    // a{sv}: length 16, padding to the 8-aligned entry, "k", the variant's signature "b", padding, true.
    expect(marshal('a{sv}', [{ k: { signature: 'b', value: true } }]).toString('hex')).toBe(
      '100000000000000001000000' + '6b00' + '016200' + '000000' + '01000000',
    );
    expect(marshal('ay', [Buffer.from([1, 2])]).toString('hex')).toBe('020000000102');
    // A double keeps its sign at 0 (dbus-next's echo does not: connection.test.ts leaves -0 out there).
    expect(marshal('d', [-0]).toString('hex')).toBe('0000000000000080');
    expect(Object.is((unmarshal('d', marshal('d', [-0])) as number[])[0], -0)).toBe(true);
  });

  it('refuses malformed signatures, with the reason', () => {
    for (const bad of ['a', '(', '()', 'a{vs}', 'a{s}', 'z', '(s', 'a{ss'])
      expect(() => parseSignature(bad), bad).toThrow(BusWireError);
    expect(() => parseSignature(`${'a'.repeat(70)}s`)).toThrow(/nests too deep/);
  });

  it('refuses a body that does not match its signature', () => {
    expect(() => marshal('s', [])).toThrow(/needs 1 values, not 0/);
    expect(() => marshal('b', ['yes'])).toThrow(/Cannot marshal string as D-Bus type b/);
    expect(() => marshal('s', ['a\0b'])).toThrow(/NUL/);
  });
});

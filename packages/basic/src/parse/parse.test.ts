import { InvalidArgumentError } from '@sd/sys';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseBoolean, tryParseBoolean } from './boolean.js';
import { parseSignal, signalName } from './signal.js';
import { parseSize, SIZE_INFINITY } from './size.js';
import { parseTimespan, USEC_INFINITY } from './timespan.js';

describe('parseBoolean (parse_boolean)', () => {
  it.each(['1', 'yes', 'Y', 'true', 't', 'ON'])('%s is true', (v) => expect(parseBoolean(v)).toBe(true));
  it.each(['0', 'no', 'N', 'false', 'f', 'OFF'])('%s is false', (v) => expect(parseBoolean(v)).toBe(false));
  it('names what failed', () => {
    expect(() => parseBoolean('maybe', '--register=')).toThrow(
      'Failed to parse --register= argument: "maybe"',
    );
    expect(tryParseBoolean('')).toBeUndefined();
  });
});

describe('parseSignal (signal_from_string)', () => {
  it.each([
    ['SIGTERM', 15],
    ['term', 15],
    ['KILL', 9],
    ['9', 9],
    ['RTMIN', 34],
    ['SIGRTMIN+3', 37],
    ['RTMAX', 64],
    ['RTMAX-2', 62],
  ])('%s is %d', (v, n) => expect(parseSignal(v)).toBe(n));
  it.each(['0', '65', 'SIGFOO', 'RTMIN-1', 'RTMAX+1', 'RTMIN+31', ''])('refuses %j', (v) =>
    expect(() => parseSignal(v)).toThrow(InvalidArgumentError),
  );
  it('round-trips every signal through its name', () => {
    for (let n = 1; n <= 64; n++) if (n !== 32 && n !== 33) expect(parseSignal(signalName(n))).toBe(n);
  });
});

describe('parseSize (parse_size, base 1024)', () => {
  it.each([
    ['512', 512n],
    ['1K', 1024n],
    ['10G', 10n << 30n],
    ['1.5M', 3n << 19n],
    ['4 KiB', 4096n],
    ['infinity', SIZE_INFINITY],
    ['-', SIZE_INFINITY],
  ])('%s', (v, n) => expect(parseSize(v)).toBe(n));
  it.each(['', 'G', '1X', '-1', '1.', '99999999999E'])('refuses %j', (v) =>
    expect(() => parseSize(v)).toThrow(InvalidArgumentError),
  );
  it('agrees with the arithmetic for every whole number and unit (property)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 1n << 33n }),
        fc.constantFrom(['', 0n], ['K', 10n], ['M', 20n], ['G', 30n]),
        (n, [u, s]) => {
          expect(parseSize(`${n}${u}`)).toBe(n << s);
        },
      ),
      { seed: 2 },
    );
  });
});

describe('parseTimespan (parse_sec)', () => {
  it.each([
    ['5', 5_000_000n],
    ['1.5s', 1_500_000n],
    ['1h 30min', 5_400_000_000n],
    ['2d4h', 187_200_000_000n],
    ['250ms', 250_000n],
    ['10us', 10n],
    ['infinity', USEC_INFINITY],
  ])('%s', (v, n) => expect(parseTimespan(v)).toBe(n));
  it.each(['', 'abc', '5 parsecs', '1h x', 's'])('refuses %j', (v) =>
    expect(() => parseTimespan(v)).toThrow(InvalidArgumentError),
  );
  it('adds up any sequence of terms (property)', () => {
    const unit = fc.constantFrom(
      ['s', 1_000_000n],
      ['min', 60_000_000n],
      ['ms', 1000n],
      ['h', 3_600_000_000n],
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(10_000), unit), { minLength: 1, maxLength: 5 }), (terms) => {
        const text = terms.map(([n, [u]]) => `${n}${u}`).join(' ');
        const want = terms.reduce((a, [n, [, us]]) => a + BigInt(n) * (us as bigint), 0n);
        expect(parseTimespan(text)).toBe(want);
      }),
      { seed: 3 },
    );
  });
});

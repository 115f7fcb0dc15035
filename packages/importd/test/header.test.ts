import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../tools/test/fuzz.js';
import { ArchiveError } from '../src/errors.js';
import { BLOCK, decodeHeader, parsePax } from '../src/index.js';
import { isZeroBlock, paxTime } from '../src/tar/header.js';
import { fixChecksum } from './archive.js';

/**
 * The header fast paths against the plain definitions: the four-bytes-a-step
 * checksum against a byte sum, at any offset and alignment of the block in
 * its buffer, the zero-block test against a byte scan, and the PAX record
 * parser's byte loops against the plain indexOf/RegExp definition, and the
 * PAX time's byte loop against its RegExp/BigInt definition.
 */

/** A PAX time the plain way (before its byte loop): the reference, as seconds and nanoseconds in BigInt. */
function plainPaxTime(s: string): string {
  const m = /^(-?)([0-9]{1,19})(?:\.([0-9]{0,18}))?$/.exec(s);
  if (!m) return 'refused';
  let sec = BigInt(m[2]!);
  let nsec = Number(`${m[3] ?? ''}000000000`.slice(0, 9));
  if (m[1] === '-') {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1n;
      nsec = 1e9 - nsec;
    }
  }
  return `${sec} ${nsec}`;
}

function paxTimeOutcome(s: string): string {
  try {
    const t = paxTime(Buffer.from(s, 'latin1'), 'mtime');
    // A number only where it is exact.
    if (typeof t.sec === 'number' && !Number.isSafeInteger(t.sec)) return `inexact ${t.sec}`;
    return `${BigInt(t.sec)} ${t.nsec}`;
  } catch (e) {
    if (!(e instanceof ArchiveError)) throw e;
    return 'refused';
  }
}

/** PAX records the plain way (the parser before its byte loops): the reference. */
function plainPax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < data.length) {
    if (data[off] === 0) break;
    const sp = data.indexOf(0x20, off);
    if (sp < 0 || sp - off > 20) throw new ArchiveError('Malformed PAX record: no length');
    const lenText = data.toString('latin1', off, sp);
    if (!/^[1-9][0-9]*$/.test(lenText))
      throw new ArchiveError(`Malformed PAX record length ${JSON.stringify(lenText)}`);
    const len = Number(lenText);
    const end = off + len;
    if (end > data.length || end <= sp + 2)
      throw new ArchiveError(`PAX record length ${len} runs past its header`);
    if (data[end - 1] !== 0x0a) throw new ArchiveError('Malformed PAX record: no newline at its end');
    const eq = data.indexOf(0x3d, sp + 1);
    if (eq < 0 || eq >= end - 1 || eq === sp + 1) throw new ArchiveError('Malformed PAX record: no key');
    const bytes = data.subarray(sp + 1, eq);
    let key: string;
    try {
      key = bytes.every((c) => c < 0x80)
        ? bytes.toString('latin1')
        : new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      // Refused as the parser refuses it (a key of bytes that are not UTF-8: rare, found by fast-check).
      throw new ArchiveError(`PAX key is not valid UTF-8: ${JSON.stringify(bytes.toString('latin1'))}`);
    }
    out.set(key, Buffer.from(data.subarray(eq + 1, end - 1)));
    off = end;
  }
  return out;
}

/** The outcome of a parser: its records, or the message it refused with. */
function outcome(parse: () => Map<string, Buffer>): string {
  try {
    return JSON.stringify([...parse()].map(([k, v]) => [k, v.toString('hex')]));
  } catch (e) {
    if (!(e instanceof ArchiveError)) throw e;
    // Absurd lengths (over 2^53) may print differently; what matters is that both refuse.
    return `refused: ${e.message.replace(/length \d{16,} runs/, 'length N runs')}`;
  }
}

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

  it('refuses a PAX key that is not UTF-8 as the plain definition does (fast-check found: "5 \\x80=\\n")', () => {
    const data = Buffer.from([0x35, 0x20, 0x80, 0x3d, 0x0a]);
    expect(outcome(() => parsePax(data))).toBe(outcome(() => plainPax(data)));
    expect(outcome(() => parsePax(data))).toMatch(/^refused: PAX key is not valid UTF-8/);
  });

  it('parses PAX records exactly as the plain definition does, or refuses as it does', () => {
    const text = fc.oneof(
      fc.constantFrom('path', 'mtime', 'atime', 'SCHILY.xattr.user.a', 'ü', ''),
      fc.string({ maxLength: 12 }),
    );
    const bytes = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
    // Records with a right length, or one off by a little, with leading zeros, spaces or junk in it.
    const record = fc
      .tuple(
        text,
        fc.oneof(
          text.map((t) => Buffer.from(t)),
          bytes,
        ),
        fc.integer({ min: -3, max: 3 }),
        fc.constantFrom('', '', '', '0', '00', ' ', 'x', '-'),
        fc.constantFrom('=', '=', '=', '', '=='),
        fc.constantFrom('\n', '\n', '\n', '', 'x'),
      )
      .map(([key, value, delta, prefix, eq, nl]) => {
        const body = Buffer.concat([Buffer.from(` ${key}${eq}`), value, Buffer.from(nl)]);
        let len = body.length + 1;
        while (String(len).length + body.length !== len) len++;
        return Buffer.concat([Buffer.from(`${prefix}${Math.max(0, len + delta)}`), body]);
      });
    const records = fc.array(record, { maxLength: 5 }).map((r) => Buffer.concat(r));
    const input = fc.oneof(
      records,
      // Padded with NULs, as some writers do.
      records.chain((r) =>
        fc.integer({ min: 0, max: 30 }).map((pad) => Buffer.concat([r, Buffer.alloc(pad)])),
      ),
      bytes,
      bytes.map((b) => Buffer.concat([Buffer.from(`${b.length + 3} `), b])),
    );
    fc.assert(
      fc.property(input, (data) => {
        expect(outcome(() => parsePax(data))).toBe(outcome(() => plainPax(data)));
        // Leaving out unused keys' values changes nothing else: the same records are checked.
        const without = (m: Map<string, Buffer>) => {
          m.delete('atime');
          return m;
        };
        expect(outcome(() => parsePax(data, new Set(['atime'])))).toBe(
          outcome(() => without(plainPax(data))),
        );
      }),
      { numRuns: fuzzRuns(3000) },
    );
  });

  it('reads PAX times exactly as the plain definition does, or refuses as it does', () => {
    for (const s of [
      '0',
      '-0',
      '-0.5',
      '1.',
      '-1.000000001',
      '1700000000.123456789999',
      '9'.repeat(15),
      '9'.repeat(16),
      `-${'9'.repeat(19)}.5`,
      '9'.repeat(20),
      '',
      '-',
      '.5',
      '1e9',
      ' 1',
      '1.2.3',
    ])
      expect(paxTimeOutcome(s)).toBe(plainPaxTime(s));
    const digits = (n: number) => fc.stringMatching(new RegExp(`^[0-9]{0,${n}}$`));
    const input = fc.oneof(
      fc
        .tuple(
          fc.constantFrom('', '-', '+', ' '),
          digits(21),
          fc.constantFrom('', '.', '..', 'e'),
          digits(20),
        )
        .map(([a, b, c, d]) => `${a}${b}${c}${d}`),
      fc.string({ maxLength: 24 }),
    );
    fc.assert(
      fc.property(input, (s) => {
        expect(paxTimeOutcome(s)).toBe(plainPaxTime(s));
      }),
      { numRuns: fuzzRuns(3000) },
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

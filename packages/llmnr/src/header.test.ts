import { describe, expect, it } from 'vitest';
import {
  decodeFlags,
  decodeHeader,
  encodeFlags,
  encodeHeader,
  isAcceptableQuery,
  type LlmnrHeader,
} from './header.js';

const query: LlmnrHeader = {
  id: 0x1234,
  qr: false,
  opcode: 0,
  c: false,
  tc: false,
  t: false,
  rcode: 0,
  qdcount: 1,
  ancount: 0,
  nscount: 0,
  arcount: 0,
};

describe('LLMNR header', () => {
  it('places every flag where RFC 4795 puts it', () => {
    const base = { qr: false, opcode: 0, c: false, tc: false, t: false, rcode: 0 };
    expect(encodeFlags({ ...base, qr: true })).toBe(0x8000);
    expect(encodeFlags({ ...base, opcode: 15 })).toBe(0x7800);
    expect(encodeFlags({ ...base, c: true })).toBe(0x0400);
    expect(encodeFlags({ ...base, tc: true })).toBe(0x0200);
    expect(encodeFlags({ ...base, t: true })).toBe(0x0100);
    expect(encodeFlags({ ...base, rcode: 3 })).toBe(0x0003);
  });

  it('encodes a query in network byte order', () => {
    expect(encodeHeader(query).toString('hex')).toBe('123400000001000000000000');
  });

  it('round-trips every flag combination', () => {
    for (let i = 0; i < 32; i++) {
      const h = { ...query, qr: !!(i & 1), c: !!(i & 2), tc: !!(i & 4), t: !!(i & 8), rcode: i & 16 ? 5 : 0 };
      expect(decodeHeader(encodeHeader(h))).toEqual(h);
    }
  });

  it('ignores the Z bits on receive', () => {
    expect(decodeFlags(0x80f0 | 0x0100)).toEqual({
      qr: true,
      opcode: 0,
      c: false,
      tc: false,
      t: true,
      rcode: 0,
    });
  });

  it('decodes a header inside a larger buffer and rejects a short one', () => {
    const packet = Buffer.concat([Buffer.alloc(4), encodeHeader({ ...query, ancount: 2 }), Buffer.alloc(20)]);
    expect(decodeHeader(packet.subarray(4)).ancount).toBe(2);
    expect(() => decodeHeader(Buffer.alloc(11))).toThrow(/shorter than its header/);
  });

  it('rejects out-of-range values when encoding', () => {
    expect(() => encodeHeader({ ...query, id: 0x10000 })).toThrow(RangeError);
    expect(() => encodeHeader({ ...query, opcode: 16 })).toThrow(RangeError);
  });

  it('tells which queries a responder answers', () => {
    expect(isAcceptableQuery(query)).toBe(true);
    expect(isAcceptableQuery({ ...query, qr: true })).toBe(false);
    expect(isAcceptableQuery({ ...query, opcode: 1 })).toBe(false);
    expect(isAcceptableQuery({ ...query, qdcount: 2 })).toBe(false);
  });
});

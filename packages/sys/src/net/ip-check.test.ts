import * as net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ipv4Bytes, ipv6Bytes, isIPv4, isIPv6 } from './sockaddr.js';

// Our address checks stand in for node:net's (too costly to load on a container's start):
// they must accept exactly what it accepts, for well-formed addresses and for junk alike.

const octet = fc.integer({ min: 0, max: 255 }).map(String);
const quad = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const group = fc
  .integer({ min: 0, max: 0xffff })
  .chain((n) =>
    fc.constantFrom(n.toString(16), n.toString(16).toUpperCase(), n.toString(16).padStart(4, '0')),
  );
/** Eight groups with any run of them compressed to `::`, maybe a dotted quad last, maybe a zone. */
const v6 = fc
  .tuple(
    fc.array(group, { minLength: 8, maxLength: 8 }),
    fc.boolean(),
    quad,
    fc.nat({ max: 8 }),
    fc.nat({ max: 8 }),
    fc.option(fc.stringMatching(/^[0-9a-zA-Z.:-]{1,8}$/), { nil: undefined }),
  )
  .map(([groups, withQuad, q, from, len, zone]) => {
    const parts: string[] = withQuad ? [...groups.slice(0, 6), q] : groups;
    const n = withQuad ? 7 : 8;
    const start = Math.min(from, n);
    const end = Math.min(start + len, n);
    const text =
      len === 0 ? parts.join(':') : `${parts.slice(0, start).join(':')}::${parts.slice(end).join(':')}`;
    return zone === undefined ? text : `${text}%${zone}`;
  });
/** Strings of the characters addresses are made of: mostly not addresses, some nearly. */
const junk = fc.stringMatching(/^[0-9a-fA-F:.%gz -]{0,40}$/);
/** Valid addresses with one character changed, dropped or doubled. */
const mutated = fc
  .tuple(fc.oneof(quad, v6), fc.nat(), fc.constantFrom('', ':', '.', '0', 'f', '%', '::', '256', 'g'))
  .map(([s, at, c]) => {
    const i = at % (s.length + 1);
    return s.slice(0, i) + c + s.slice(i + (c === '' ? 1 : 0));
  });

describe('isIPv4 / isIPv6', () => {
  it('accept exactly what node:net accepts', () => {
    fc.assert(
      fc.property(fc.oneof(quad, v6, junk, mutated), (s) => {
        expect(isIPv4(s)).toBe(net.isIPv4(s));
        expect(isIPv6(s)).toBe(net.isIPv6(s));
      }),
      { numRuns: 20_000 },
    );
  });

  it('decide the cases that differ between address parsers', () => {
    for (const s of [
      '1.2.3.4',
      '01.2.3.4',
      '1.2.3',
      '256.1.1.1',
      '::',
      ':::',
      '::1',
      '1::',
      '1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7::',
      '::2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7:8::',
      '1::2::3',
      '::ffff:1.2.3.4',
      '1:2:3:4:5:6:1.2.3.4',
      '1:2:3:4:5:6::1.2.3.4',
      '1.2.3.4::',
      '::1.2.3.4:1',
      'fe80::1%eth0',
      'fe80::1%',
      'fe80::1%a%b',
      '12345::',
      '',
    ]) {
      expect([s, isIPv4(s)]).toEqual([s, net.isIPv4(s)]);
      expect([s, isIPv6(s)]).toEqual([s, net.isIPv6(s)]);
    }
  });

  it('still refuse what is not an address where bytes are made', () => {
    expect(() => ipv4Bytes('01.2.3.4')).toThrow(/not an IPv4 address/);
    expect(() => ipv6Bytes('1::2::3')).toThrow(/not an IPv6 address/);
    expect([...ipv4Bytes('192.168.7.1')]).toEqual([192, 168, 7, 1]);
    expect(ipv6Bytes('::ffff:1.2.3.4').toString('hex')).toBe('00000000000000000000ffff01020304');
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../../tools/test/fuzz.js';
import {
  BOOTREQUEST,
  DHCP_MAGIC,
  DhcpParseError,
  DhcpType,
  encodeDhcp,
  messageType,
  Opt,
  opt,
  optionIp,
  optionIps,
  optionText,
  parseDhcp,
} from './codec.js';
import { buildUdp4, parseUdp4 } from './frame.js';

const MAC = Buffer.from('020000aabbcc', 'hex');

function discover(extra: Array<[number, Buffer]> = []): Buffer {
  return encodeDhcp({
    op: BOOTREQUEST,
    xid: 0x12345678,
    chaddr: MAC,
    flags: 0x8000,
    options: [opt.u8(Opt.MESSAGE_TYPE, DhcpType.DISCOVER), ...extra],
  });
}

describe('DHCP codec', () => {
  it('round-trips the header and options', () => {
    const b = discover([
      opt.ip(Opt.REQUESTED_IP, [0x0a000005]),
      opt.bytes(Opt.HOSTNAME, Buffer.from('guest')),
    ]);
    expect(b.length).toBe(300);
    const m = parseDhcp(b);
    expect(m).toMatchObject({ op: 1, htype: 1, hlen: 6, xid: 0x12345678, flags: 0x8000, ciaddr: '0.0.0.0' });
    expect(m.chaddr).toEqual(MAC);
    expect(messageType(m)).toBe(DhcpType.DISCOVER);
    expect(optionIp(m, Opt.REQUESTED_IP)).toBe('10.0.0.5');
    expect(optionText(m, Opt.HOSTNAME)).toBe('guest');
  });

  it('joins split options (RFC 3396) and splits long ones when encoding', () => {
    const long = Buffer.alloc(600, 7);
    const m = parseDhcp(discover([opt.bytes(Opt.VENDOR_CLASS, long)]));
    expect(m.options.get(Opt.VENDOR_CLASS)).toEqual(long);
    const dns = parseDhcp(discover([opt.ip(Opt.DNS, [1]), opt.ip(Opt.DNS, [2])]));
    expect(optionIps(dns, Opt.DNS)).toEqual(['0.0.0.1', '0.0.0.2']);
  });

  it('reads options from file and sname only when option 52 says so', () => {
    const b = discover([opt.u8(Opt.OVERLOAD, 1)]);
    // An option inside `file` (offset 108).
    Buffer.from([Opt.HOSTNAME, 2, 0x68, 0x69, Opt.END]).copy(b, 108);
    expect(optionText(parseDhcp(b), Opt.HOSTNAME)).toBe('hi');
    const plain = discover();
    Buffer.from([Opt.HOSTNAME, 2, 0x68, 0x69, Opt.END]).copy(plain, 108);
    expect(parseDhcp(plain).options.has(Opt.HOSTNAME)).toBe(false);
  });

  it('names what is wrong with a malformed message', () => {
    const ok = discover();
    expect(() => parseDhcp(ok.subarray(0, 239))).toThrow(/239 bytes is shorter than the 240-byte header/);
    const badOp = Buffer.from(ok);
    badOp[0] = 3;
    expect(() => parseDhcp(badOp)).toThrow(/op 3/);
    const badHlen = Buffer.from(ok);
    badHlen[2] = 17;
    expect(() => parseDhcp(badHlen)).toThrow(/hardware address length 17/);
    const badMagic = Buffer.from(ok);
    badMagic.writeUInt32BE(DHCP_MAGIC + 1, 236);
    expect(() => parseDhcp(badMagic)).toThrow(/magic cookie/);
    const overrun = Buffer.concat([ok.subarray(0, 240), Buffer.from([Opt.HOSTNAME, 10, 1, 2])]);
    expect(() => parseDhcp(overrun)).toThrow(/option 12 in options claims 10 bytes, only 2 left/);
    const noLen = Buffer.concat([ok.subarray(0, 240), Buffer.from([Opt.HOSTNAME])]);
    expect(() => parseDhcp(noLen)).toThrow(/no length byte/);
    const badType = discover([]);
    badType[242] = 9;
    expect(() => parseDhcp(badType)).toThrow(DhcpParseError);
  });

  it('never throws anything but DhcpParseError on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 700 }), (bytes) => {
        try {
          parseDhcp(Buffer.from(bytes));
        } catch (e) {
          expect(e).toBeInstanceOf(DhcpParseError);
        }
      }),
      { numRuns: fuzzRuns(3000) },
    );
    // Mutations of a valid message, with the cookie kept, reach the option walker.
    const base = discover([opt.bytes(Opt.HOSTNAME, Buffer.from('guest')), opt.u8(Opt.OVERLOAD, 3)]);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.nat(255)), { maxLength: 40 }),
        fc.nat(base.length),
        (edits, cut) => {
          const b = Buffer.from(base);
          for (const [at, v] of edits) if (at < 236 || at >= 240) b[at] = v;
          try {
            const m = parseDhcp(b.subarray(0, Math.max(cut, 240)));
            for (const v of m.options.values()) expect(v.length).toBeLessThanOrEqual(b.length);
          } catch (e) {
            expect(e).toBeInstanceOf(DhcpParseError);
          }
        },
      ),
      { numRuns: fuzzRuns(3000) },
    );
  });
});

describe('IPv4/UDP frames for packet sockets', () => {
  it('builds a datagram whose IP and UDP checksums verify', () => {
    const f = buildUdp4({ src: 0, dst: 0xffffffff, srcPort: 68, dstPort: 67, payload: Buffer.from('hello') });
    const p = parseUdp4(f);
    expect(p).toMatchObject({ src: 0, dst: 0xffffffff, srcPort: 68, dstPort: 67 });
    expect(typeof p !== 'string' && p.payload.toString()).toBe('hello');
  });

  it('rejects bad checksums, fragments and lengths by name', () => {
    const f = buildUdp4({ src: 1, dst: 2, srcPort: 67, dstPort: 68, payload: Buffer.alloc(10, 1) });
    const badIp = Buffer.from(f);
    badIp[8] = 1;
    expect(parseUdp4(badIp)).toBe('bad-header-checksum');
    const badUdp = Buffer.from(f);
    badUdp[30] = badUdp[30]! ^ 1;
    expect(parseUdp4(badUdp)).toBe('bad-udp-checksum');
    expect(parseUdp4(f.subarray(0, 27))).toBe('short');
    expect(parseUdp4(f.subarray(0, 30))).toBe('bad-total-length');
  });

  it('never throws on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const r = parseUdp4(Buffer.from(bytes));
        if (typeof r !== 'string') expect(r.payload.length).toBeLessThanOrEqual(bytes.length);
      }),
      { numRuns: fuzzRuns(3000) },
    );
  });
});

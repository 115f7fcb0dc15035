import { describe, expect, it } from 'vitest';
import {
  credentialsCmsg,
  decodeCmsgs,
  encodeCmsgs,
  receivedCredentials,
  receivedFds,
  receivedPktinfo,
  rightsCmsg,
} from './cmsg.js';
import {
  attr,
  attrMap,
  decodeAttrs,
  decodeNlmsgs,
  encodeAttrs,
  encodeNlmsg,
  NLA_F,
  NLM_F,
  NLMSG,
  nlmsgError,
} from './netlink.js';
import { decodeIfinfomsg, encodeIfinfomsg, IFLA, parseLink, RTM } from './rtnetlink.js';
import {
  formatIPv6,
  ipv6Bytes,
  parseSockaddr,
  sockaddrIn,
  sockaddrIn6,
  sockaddrLl,
  sockaddrNl,
  sockaddrUn,
} from './sockaddr.js';

describe('sockaddrs', () => {
  it('lays out the structs', () => {
    expect(sockaddrNl({ pid: 5, groups: 1 }).toString('hex')).toBe('1000000005000000' + '01000000');
    expect(sockaddrIn('127.0.0.1', 53).toString('hex')).toBe('020000357f000001' + '0000000000000000');
    const ll = sockaddrLl({ protocol: 0x0806, ifindex: 3, addr: Buffer.from('ffffffffffff', 'hex') });
    expect(ll.toString('hex')).toBe('1100' + '0806' + '03000000' + '0000' + '00' + '06' + 'ffffffffffff0000');
    expect(sockaddrUn('@sd-test').toString('hex')).toBe(
      `0100${'00'}${Buffer.from('sd-test').toString('hex')}`,
    );
    expect(sockaddrUn('/run/x').subarray(2).toString()).toBe('/run/x\0');
  });

  it('round-trips through parseSockaddr', () => {
    expect(parseSockaddr(sockaddrIn('10.0.0.1', 8080))).toEqual({
      family: 'inet',
      address: '10.0.0.1',
      port: 8080,
    });
    expect(parseSockaddr(sockaddrIn6('fe80::1', 547, 2))).toEqual({
      family: 'inet6',
      address: 'fe80::1',
      port: 547,
      scopeId: 2,
      flowinfo: 0,
    });
    expect(parseSockaddr(sockaddrNl({ pid: 9 }))).toEqual({ family: 'netlink', pid: 9, groups: 0 });
    expect(parseSockaddr(sockaddrUn('@abc'))).toEqual({ family: 'unix', path: '@abc' });
    const ll = parseSockaddr(sockaddrLl({ protocol: 0x88b5, ifindex: 1, addr: Buffer.alloc(6, 1) }));
    expect(ll).toMatchObject({ family: 'packet', protocol: 0x88b5, ifindex: 1 });
  });

  it('parses and formats IPv6', () => {
    expect(ipv6Bytes('2001:db8::ff00:42:8329').toString('hex')).toBe('20010db8000000000000ff0000428329');
    expect(ipv6Bytes('::ffff:192.0.2.1').toString('hex')).toBe('00000000000000000000ffffc0000201');
    expect(formatIPv6(ipv6Bytes('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1');
    expect(formatIPv6(Buffer.alloc(16))).toBe('::');
    expect(() => sockaddrIn('300.1.1.1')).toThrow(/not an IPv4 address/);
  });
});

describe('control messages', () => {
  it('encodes SCM_RIGHTS as cmsghdr + fds, padded to 8', () => {
    const b = encodeCmsgs([rightsCmsg([3, 4, 5])]);
    expect(b.length).toBe(32);
    expect(b.toString('hex')).toBe(
      '1c00000000000000' + '01000000' + '01000000' + '03000000' + '04000000' + '05000000' + '00000000',
    );
    expect(receivedFds(decodeCmsgs(b))).toEqual([3, 4, 5]);
  });

  it('decodes several messages and pktinfo', () => {
    const pkt = { level: 0, type: 8, data: Buffer.from('02000000' + '7f000001' + '7f000002', 'hex') };
    const msgs = decodeCmsgs(encodeCmsgs([credentialsCmsg({ pid: 7, uid: 0, gid: 5 }), pkt]));
    expect(receivedCredentials(msgs)).toEqual({ pid: 7, uid: 0, gid: 5 });
    expect(receivedPktinfo(msgs)).toEqual({ ifindex: 2, specDst: '127.0.0.1', addr: '127.0.0.2' });
  });
});

describe('netlink codec', () => {
  it('encodes a GETLINK dump request', () => {
    const m = encodeNlmsg({
      type: RTM.GETLINK,
      flags: NLM_F.REQUEST | NLM_F.DUMP,
      seq: 1,
      payload: encodeIfinfomsg(),
    });
    expect(m.toString('hex')).toBe(`20000000${'1200'}${'0103'}${'01000000'}${'00000000'}${'00'.repeat(16)}`);
  });

  it('encodes nested attributes with padding and reads them back', () => {
    const b = encodeAttrs([
      attr.string(IFLA.IFNAME, 'veth0'),
      attr.nested(IFLA.LINKINFO, [attr.string(IFLA.INFO_KIND, 'veth')]),
      attr.u32(IFLA.MTU, 1500),
    ]);
    // "veth0\0" is 6 bytes: rtattr len 10, padded to 12.
    expect(b.subarray(0, 12).toString('hex')).toBe(`0a000300${Buffer.from('veth0\0\0\0').toString('hex')}`);
    const attrs = decodeAttrs(b);
    expect(attrs.map((a) => [a.type, a.flags])).toEqual([
      [IFLA.IFNAME, 0],
      [IFLA.LINKINFO, NLA_F.NESTED],
      [IFLA.MTU, 0],
    ]);
    expect(attr.readString(attrMap(attrs[1]!.value).get(IFLA.INFO_KIND)!)).toBe('veth');
    expect(attrMap(b).get(IFLA.MTU)?.readUInt32LE(0)).toBe(1500);
  });

  it('splits multi-part datagrams and decodes links', () => {
    const link = encodeNlmsg({
      type: RTM.NEWLINK,
      flags: NLM_F.MULTI,
      seq: 9,
      payload: Buffer.concat([
        encodeIfinfomsg({ index: 1, type: 772, flags: 0x49 }),
        encodeAttrs([attr.string(IFLA.IFNAME, 'lo'), attr.u32(IFLA.MTU, 65536)]),
      ]),
    });
    const done = encodeNlmsg({ type: NLMSG.DONE, flags: NLM_F.MULTI, seq: 9, payload: Buffer.alloc(4) });
    const msgs = decodeNlmsgs(Buffer.concat([link, done]));
    expect(msgs.map((m) => m.type)).toEqual([RTM.NEWLINK, NLMSG.DONE]);
    expect(decodeIfinfomsg(msgs[0]!.payload).index).toBe(1);
    expect(parseLink(msgs[0]!)).toEqual({ index: 1, name: 'lo', flags: 0x49, type: 772, mtu: 65536 });
    expect(() => decodeNlmsgs(Buffer.concat([link.subarray(0, 20)]))).toThrow(/overruns/);
  });

  it('turns NLMSG_ERROR into a SyscallError with the extended ack text', () => {
    const ack = { type: NLMSG.ERROR, flags: 0, seq: 1, pid: 0, payload: Buffer.alloc(20) };
    expect(nlmsgError(ack)).toBeUndefined();
    const req = encodeNlmsg({ type: RTM.NEWLINK, flags: 5, seq: 1 });
    const payload = Buffer.concat([
      Buffer.from('eaffffff', 'hex'),
      req.subarray(0, 16),
      encodeAttrs([attr.string(1, 'bad MTU')]),
    ]);
    const err = nlmsgError({
      type: NLMSG.ERROR,
      flags: NLM_F.CAPPED | NLM_F.ACK_TLVS,
      seq: 1,
      pid: 0,
      payload,
    });
    expect(err?.code).toBe('EINVAL');
    expect(err?.errno).toBe(22);
    expect(err?.message).toMatch(/EINVAL.*: bad MTU$/);
  });
});

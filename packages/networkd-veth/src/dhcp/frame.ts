import { intToIp, ipBytes } from './ipv4.js';

/**
 * IPv4 + UDP headers for DHCP over packet sockets (AF_PACKET, SOCK_DGRAM):
 * the client without an address and the server answering one both have to
 * build the datagram themselves. Incoming packets are checked like hostile
 * input: lengths, header checksum, fragments, UDP checksum.
 */

export interface Udp4 {
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

function sum16(b: Buffer, start = 0, end = b.length, initial = 0): number {
  let s = initial;
  for (let o = start; o + 1 < end; o += 2) s += b.readUInt16BE(o);
  if ((end - start) & 1) s += b[end - 1]! << 8;
  return s;
}

function fold(s: number): number {
  let v = s;
  while (v > 0xffff) v = (v & 0xffff) + Math.floor(v / 0x10000);
  return v;
}

/** The Internet checksum (RFC 1071) of `b`. */
export function inetChecksum(b: Buffer, initial = 0): number {
  return ~fold(sum16(b, 0, b.length, initial)) & 0xffff;
}

function udpChecksum(src: number, dst: number, udp: Buffer): number {
  const pseudo = Buffer.alloc(12);
  pseudo.writeUInt32BE(src >>> 0, 0);
  pseudo.writeUInt32BE(dst >>> 0, 4);
  pseudo[9] = 17;
  pseudo.writeUInt16BE(udp.length, 10);
  const c = inetChecksum(udp, sum16(pseudo));
  return c === 0 ? 0xffff : c;
}

export function buildUdp4(p: Udp4, ttl = 64): Buffer {
  const udpLen = 8 + p.payload.length;
  const b = Buffer.alloc(20 + udpLen);
  b[0] = 0x45;
  b[1] = 0x10; // TOS low delay, as DHCP implementations usually set
  b.writeUInt16BE(b.length, 2);
  b[8] = ttl;
  b[9] = 17;
  ipBytes(p.src).copy(b, 12);
  ipBytes(p.dst).copy(b, 16);
  b.writeUInt16BE(inetChecksum(b.subarray(0, 20)), 10);
  const udp = b.subarray(20);
  udp.writeUInt16BE(p.srcPort, 0);
  udp.writeUInt16BE(p.dstPort, 2);
  udp.writeUInt16BE(udpLen, 4);
  p.payload.copy(udp, 8);
  udp.writeUInt16BE(udpChecksum(p.src, p.dst, udp), 6);
  return b;
}

/** Why a packet was not taken; for counters and debug logs. */
export type FrameReject =
  | 'short'
  | 'not-ipv4'
  | 'bad-header-length'
  | 'bad-total-length'
  | 'bad-header-checksum'
  | 'fragment'
  | 'not-udp'
  | 'bad-udp-length'
  | 'bad-udp-checksum';

/** Parses an IPv4 packet carrying UDP; a FrameReject string when it is not a sound one. */
export function parseUdp4(b: Buffer): Udp4 | FrameReject {
  if (b.length < 28) return 'short';
  if (b[0]! >> 4 !== 4) return 'not-ipv4';
  const ihl = (b[0]! & 15) * 4;
  if (ihl < 20 || ihl + 8 > b.length) return 'bad-header-length';
  const total = b.readUInt16BE(2);
  if (total < ihl + 8 || total > b.length) return 'bad-total-length';
  if (inetChecksum(b.subarray(0, ihl)) !== 0) return 'bad-header-checksum';
  const frag = b.readUInt16BE(6);
  if (frag & 0x3fff) return 'fragment';
  if (b[9] !== 17) return 'not-udp';
  const udp = b.subarray(ihl, total);
  const udpLen = udp.readUInt16BE(4);
  if (udpLen < 8 || udpLen > udp.length) return 'bad-udp-length';
  const src = b.readUInt32BE(12);
  const dst = b.readUInt32BE(16);
  const sum = udp.readUInt16BE(6);
  if (sum !== 0) {
    const check = Buffer.from(udp.subarray(0, udpLen));
    check.writeUInt16BE(0, 6);
    const want = udpChecksum(src, dst, check);
    if (want !== sum) return 'bad-udp-checksum';
  }
  return {
    src,
    dst,
    srcPort: udp.readUInt16BE(0),
    dstPort: udp.readUInt16BE(2),
    payload: Buffer.from(udp.subarray(8, udpLen)),
  };
}

export const describeUdp4 = (p: Udp4): string =>
  `${intToIp(p.src)}:${p.srcPort} -> ${intToIp(p.dst)}:${p.dstPort} (${p.payload.length} bytes)`;

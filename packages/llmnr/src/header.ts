import { SdError } from '@sd/sys';

/**
 * The 12-byte LLMNR header (RFC 4795 §2.1.1). It is DNS's header with other
 * flags: after QR and OPCODE come C (conflict), TC (truncation) and T
 * (tentative), then four Z bits that senders set to zero and receivers
 * ignore, and RCODE.
 *
 *   bit 15 QR | 14..11 OPCODE | 10 C | 9 TC | 8 T | 7..4 Z | 3..0 RCODE
 */

export const HEADER_SIZE = 12;
export const LLMNR_PORT = 5355;
export const LLMNR_MULTICAST_IPV4 = '224.0.0.252';
export const LLMNR_MULTICAST_IPV6 = 'ff02::1:3';

export interface LlmnrHeader {
  id: number;
  /** A response (true) or a query. */
  qr: boolean;
  /** 0 (standard query) is the only opcode LLMNR defines; others are answered with nothing. */
  opcode: number;
  /** Conflict: in a query, the sender saw a conflict; in a response, the name is not unique. */
  c: boolean;
  /** Truncated: retry over TCP. */
  tc: boolean;
  /** Tentative: the responder has not finished its uniqueness check. */
  t: boolean;
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

/** A packet that cannot be an LLMNR message. */
export class LlmnrPacketError extends SdError {
  constructor(message: string) {
    super('EBADMSG', message);
  }
}

export function encodeFlags(h: Pick<LlmnrHeader, 'qr' | 'opcode' | 'c' | 'tc' | 't' | 'rcode'>): number {
  if (!Number.isInteger(h.opcode) || h.opcode < 0 || h.opcode > 15)
    throw new RangeError(`LLMNR opcode out of range: ${h.opcode}`);
  if (!Number.isInteger(h.rcode) || h.rcode < 0 || h.rcode > 15)
    throw new RangeError(`LLMNR rcode out of range: ${h.rcode}`);
  return (
    (h.qr ? 0x8000 : 0) |
    (h.opcode << 11) |
    (h.c ? 0x0400 : 0) |
    (h.tc ? 0x0200 : 0) |
    (h.t ? 0x0100 : 0) |
    h.rcode
  );
}

/** Decodes the flags word; the Z bits are ignored as the RFC asks. */
export function decodeFlags(flags: number): Pick<LlmnrHeader, 'qr' | 'opcode' | 'c' | 'tc' | 't' | 'rcode'> {
  return {
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    c: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    t: (flags & 0x0100) !== 0,
    rcode: flags & 0xf,
  };
}

const u16 = (name: string, v: number): number => {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`LLMNR ${name} out of range: ${v}`);
  return v;
};

export function encodeHeader(h: LlmnrHeader): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.writeUInt16BE(u16('id', h.id), 0);
  b.writeUInt16BE(encodeFlags(h), 2);
  b.writeUInt16BE(u16('qdcount', h.qdcount), 4);
  b.writeUInt16BE(u16('ancount', h.ancount), 6);
  b.writeUInt16BE(u16('nscount', h.nscount), 8);
  b.writeUInt16BE(u16('arcount', h.arcount), 10);
  return b;
}

/** Decodes the header at the start of a packet; throws LlmnrPacketError when it is too short. */
export function decodeHeader(packet: Uint8Array): LlmnrHeader {
  if (packet.length < HEADER_SIZE)
    throw new LlmnrPacketError(`LLMNR packet of ${packet.length} bytes is shorter than its header`);
  const b = Buffer.from(packet.buffer, packet.byteOffset, HEADER_SIZE);
  return {
    id: b.readUInt16BE(0),
    ...decodeFlags(b.readUInt16BE(2)),
    qdcount: b.readUInt16BE(4),
    ancount: b.readUInt16BE(6),
    nscount: b.readUInt16BE(8),
    arcount: b.readUInt16BE(10),
  };
}

/**
 * RFC 4795 §2.1.1 and §2.4: a query a responder must silently drop — one
 * that is a response, uses an opcode other than 0, or does not carry
 * exactly one question.
 */
export function isAcceptableQuery(h: LlmnrHeader): boolean {
  return !h.qr && h.opcode === 0 && h.qdcount === 1;
}

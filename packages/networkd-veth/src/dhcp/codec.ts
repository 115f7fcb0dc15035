import { SdError } from '@sd/sys';
import { intToIp, ipBytes } from './ipv4.js';

/**
 * DHCP messages (RFC 2131 §2, BOOTP layout) and their options (RFC 2132),
 * parsed as hostile input: every length is checked against the bytes that
 * are there, options split over several instances are joined (RFC 3396),
 * and the `file`/`sname` fields are read for options only when option 52
 * says so.
 */

export class DhcpParseError extends SdError {
  constructor(message: string) {
    super('EBADMSG', `DHCP: ${message}`);
  }
}

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const DHCP_MAGIC = 0x63825363;
/** The fixed part before the options: op..file (236 bytes) plus the magic cookie. */
export const DHCP_HEADER_SIZE = 240;
/** The smallest message every client must accept (RFC 2131 §2: 576-byte IP datagrams). */
export const DHCP_MIN_MESSAGE = 576 - 28;
export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
export const BROADCAST_FLAG = 0x8000;

export const DhcpType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type DhcpTypeValue = (typeof DhcpType)[keyof typeof DhcpType];

export const DhcpTypeName: Record<number, string> = Object.fromEntries(
  Object.entries(DhcpType).map(([k, v]) => [v, k]),
);

export const Opt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  BROADCAST: 28,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_REQUEST_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  /** RFC 4039: DISCOVER answered by ACK at once, no OFFER/REQUEST. */
  RAPID_COMMIT: 80,
  END: 255,
} as const;

export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** The client's hardware address: `hlen` bytes of chaddr (at most 16). */
  chaddr: Buffer;
  /** Options by code, each the concatenation of all its instances. */
  options: Map<number, Buffer>;
}

const ip = (b: Buffer, o: number) => intToIp(b.readUInt32BE(o));

/** Walks one option area; `into` gathers values, concatenating repeats (RFC 3396). */
function readOptions(b: Buffer, where: string, into: Map<number, Buffer>): void {
  let o = 0;
  while (o < b.length) {
    const code = b[o]!;
    if (code === Opt.PAD) {
      o++;
      continue;
    }
    if (code === Opt.END) return;
    if (o + 1 >= b.length) throw new DhcpParseError(`option ${code} in ${where} has no length byte`);
    const len = b[o + 1]!;
    if (o + 2 + len > b.length)
      throw new DhcpParseError(
        `option ${code} in ${where} claims ${len} bytes, only ${b.length - o - 2} left`,
      );
    const value = b.subarray(o + 2, o + 2 + len);
    const had = into.get(code);
    into.set(code, had ? Buffer.concat([had, value]) : Buffer.from(value));
    o += 2 + len;
  }
  // A missing END is tolerated (many clients pad to the end instead).
}

/** Decodes one DHCP message (the UDP payload). Throws DhcpParseError naming what is wrong. */
export function parseDhcp(b: Buffer): DhcpMessage {
  if (b.length < DHCP_HEADER_SIZE)
    throw new DhcpParseError(
      `message of ${b.length} bytes is shorter than the ${DHCP_HEADER_SIZE}-byte header`,
    );
  const op = b[0]!;
  if (op !== BOOTREQUEST && op !== BOOTREPLY)
    throw new DhcpParseError(`op ${op} is neither request nor reply`);
  const hlen = b[2]!;
  if (hlen > 16) throw new DhcpParseError(`hardware address length ${hlen} exceeds 16`);
  if (b.readUInt32BE(236) !== DHCP_MAGIC)
    throw new DhcpParseError(`magic cookie 0x${b.readUInt32BE(236).toString(16)} is not DHCP's`);
  const options = new Map<number, Buffer>();
  readOptions(b.subarray(DHCP_HEADER_SIZE), 'options', options);
  const overload = options.get(Opt.OVERLOAD);
  if (overload) {
    if (overload.length !== 1 || overload[0]! < 1 || overload[0]! > 3)
      throw new DhcpParseError(`option overload (52) has a bad value`);
    // RFC 2131 §4.1: file first, then sname.
    if (overload[0]! & 1) readOptions(b.subarray(108, 236), 'file', options);
    if (overload[0]! & 2) readOptions(b.subarray(44, 108), 'sname', options);
  }
  const type = options.get(Opt.MESSAGE_TYPE);
  if (type && (type.length !== 1 || type[0]! < 1 || type[0]! > 8))
    throw new DhcpParseError(`message type option (53) is not one byte in 1..8`);
  return {
    op,
    htype: b[1]!,
    hlen,
    hops: b[3]!,
    xid: b.readUInt32BE(4),
    secs: b.readUInt16BE(8),
    flags: b.readUInt16BE(10),
    ciaddr: ip(b, 12),
    yiaddr: ip(b, 16),
    siaddr: ip(b, 20),
    giaddr: ip(b, 24),
    chaddr: Buffer.from(b.subarray(28, 28 + hlen)),
    options,
  };
}

/** The DHCP message type (option 53), or undefined for a plain BOOTP message. */
export function messageType(m: DhcpMessage): number | undefined {
  return m.options.get(Opt.MESSAGE_TYPE)?.[0];
}

/** An option holding one IPv4 address; undefined when absent or not exactly 4 bytes. */
export function optionIp(m: DhcpMessage, code: number): string | undefined {
  const v = m.options.get(code);
  return v && v.length === 4 ? ip(v, 0) : undefined;
}

/** An option holding a list of IPv4 addresses; undefined when absent or not a multiple of 4. */
export function optionIps(m: DhcpMessage, code: number): string[] | undefined {
  const v = m.options.get(code);
  if (!v || v.length === 0 || v.length % 4) return undefined;
  const out: string[] = [];
  for (let o = 0; o < v.length; o += 4) out.push(ip(v, o));
  return out;
}

export function optionU32(m: DhcpMessage, code: number): number | undefined {
  const v = m.options.get(code);
  return v && v.length === 4 ? v.readUInt32BE(0) : undefined;
}

/** A text option, with NULs and control characters dropped (it may reach logs). */
export function optionText(m: DhcpMessage, code: number): string | undefined {
  const v = m.options.get(code);
  if (!v) return undefined;
  return v.toString('latin1').replace(/[\x00-\x1f\x7f]/g, '');
}

export interface DhcpOutgoing {
  op: number;
  xid: number;
  secs?: number;
  flags?: number;
  ciaddr?: string;
  yiaddr?: string;
  siaddr?: string;
  giaddr?: string;
  chaddr: Buffer;
  htype?: number;
  /** Options in the order given; values longer than 255 bytes are split (RFC 3396). */
  options: ReadonlyArray<readonly [number, Buffer]>;
}

export const opt = {
  u8: (code: number, v: number): [number, Buffer] => [code, Buffer.of(v)],
  u16: (code: number, v: number): [number, Buffer] => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    return [code, b];
  },
  u32: (code: number, v: number): [number, Buffer] => [code, ipBytes(v)],
  ip: (code: number, addresses: readonly number[]): [number, Buffer] => [
    code,
    Buffer.concat(addresses.map(ipBytes)),
  ],
  bytes: (code: number, v: Buffer): [number, Buffer] => [code, v],
};

function writeIp(b: Buffer, o: number, address: string | undefined): void {
  if (!address) return;
  const parts = address.split('.').map(Number);
  for (let i = 0; i < 4; i++) b[o + i] = parts[i]! & 255;
}

/** Encodes a message, padded to the 300 bytes BOOTP relays and old clients expect. */
export function encodeDhcp(m: DhcpOutgoing): Buffer {
  if (m.chaddr.length > 16) throw new DhcpParseError(`hardware address of ${m.chaddr.length} bytes`);
  const opts: Buffer[] = [];
  for (const [code, value] of m.options) {
    if (code === Opt.PAD || code === Opt.END) continue;
    for (let o = 0; o < value.length || o === 0; o += 255) {
      const part = value.subarray(o, o + 255);
      opts.push(Buffer.of(code, part.length), part);
      if (value.length === 0) break;
    }
  }
  opts.push(Buffer.of(Opt.END));
  const body = Buffer.concat(opts);
  const b = Buffer.alloc(Math.max(300, DHCP_HEADER_SIZE + body.length));
  b[0] = m.op;
  b[1] = m.htype ?? 1;
  b[2] = m.chaddr.length;
  b.writeUInt32BE(m.xid >>> 0, 4);
  b.writeUInt16BE(m.secs ?? 0, 8);
  b.writeUInt16BE(m.flags ?? 0, 10);
  writeIp(b, 12, m.ciaddr);
  writeIp(b, 16, m.yiaddr);
  writeIp(b, 20, m.siaddr);
  writeIp(b, 24, m.giaddr);
  m.chaddr.copy(b, 28);
  b.writeUInt32BE(DHCP_MAGIC, 236);
  body.copy(b, DHCP_HEADER_SIZE);
  return b;
}

import { SdError } from '@sd/sys';

/** ARP for Ethernet and IPv4 (RFC 826), the payload of an ETH_P_ARP packet socket. */

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
export const ARP_SIZE = 28;

export interface ArpPacket {
  op: number;
  senderMac: Buffer;
  /** Sender protocol address as a 32-bit number. */
  senderIp: number;
  targetMac: Buffer;
  targetIp: number;
}

export class ArpParseError extends SdError {
  constructor(message: string) {
    super('EBADMSG', `ARP: ${message}`);
  }
}

export function parseArp(b: Buffer): ArpPacket {
  if (b.length < ARP_SIZE) throw new ArpParseError(`packet of ${b.length} bytes is shorter than ${ARP_SIZE}`);
  if (b.readUInt16BE(0) !== 1) throw new ArpParseError(`hardware type ${b.readUInt16BE(0)} is not Ethernet`);
  if (b.readUInt16BE(2) !== 0x0800)
    throw new ArpParseError(`protocol type 0x${b.readUInt16BE(2).toString(16)} is not IPv4`);
  if (b[4] !== 6 || b[5] !== 4) throw new ArpParseError(`address lengths ${b[4]}/${b[5]} are not 6/4`);
  const op = b.readUInt16BE(6);
  if (op !== ARP_REQUEST && op !== ARP_REPLY)
    throw new ArpParseError(`operation ${op} is neither request nor reply`);
  return {
    op,
    senderMac: Buffer.from(b.subarray(8, 14)),
    senderIp: b.readUInt32BE(14),
    targetMac: Buffer.from(b.subarray(18, 24)),
    targetIp: b.readUInt32BE(24),
  };
}

export function encodeArp(p: ArpPacket): Buffer {
  const b = Buffer.alloc(ARP_SIZE);
  b.writeUInt16BE(1, 0);
  b.writeUInt16BE(0x0800, 2);
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(p.op, 6);
  p.senderMac.copy(b, 8, 0, 6);
  b.writeUInt32BE(p.senderIp >>> 0, 14);
  p.targetMac.copy(b, 18, 0, 6);
  b.writeUInt32BE(p.targetIp >>> 0, 24);
  return b;
}

/** An ARP probe (RFC 5227 §2.1.1): who-has `ip`, from sender address 0.0.0.0. */
export function arpProbe(mac: Buffer, ip: number): Buffer {
  return encodeArp({
    op: ARP_REQUEST,
    senderMac: mac,
    senderIp: 0,
    targetMac: Buffer.alloc(6),
    targetIp: ip,
  });
}

/** An ARP announcement: a request with sender and target both `ip`. */
export function arpAnnounce(mac: Buffer, ip: number): Buffer {
  return encodeArp({
    op: ARP_REQUEST,
    senderMac: mac,
    senderIp: ip,
    targetMac: Buffer.alloc(6),
    targetIp: ip,
  });
}

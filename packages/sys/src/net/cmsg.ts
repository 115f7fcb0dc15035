import { InvalidArgumentError } from '../errors.js';
import { formatIPv4, IP, ipv4Bytes, SOL } from './sockaddr.js';

/**
 * Ancillary data (cmsg(3)) on 64-bit Linux: struct cmsghdr is
 * {size_t len; int level; int type} (16 bytes), data aligned to 8.
 */

export const CMSG_HDR = 16;
export const SCM = { RIGHTS: 1, CREDENTIALS: 2 } as const;

/** One control message. */
export interface Cmsg {
  level: number;
  type: number;
  data: Buffer;
}

export interface Ucred {
  pid: number;
  uid: number;
  gid: number;
}

export interface PktInfo {
  ifindex: number;
  /** The local address (for sending: the source to use). */
  specDst: string;
  /** The destination address of the received packet. */
  addr: string;
}

const align = (n: number) => (n + 7) & ~7;

/** CMSG_SPACE(n): the bytes a message with n data bytes takes in a control buffer. */
export function cmsgSpace(dataLength: number): number {
  return CMSG_HDR + align(dataLength);
}

/** Lays out control messages as the kernel reads them. */
export function encodeCmsgs(msgs: readonly Cmsg[]): Buffer {
  const b = Buffer.alloc(msgs.reduce((n, m) => n + cmsgSpace(m.data.length), 0));
  let o = 0;
  for (const m of msgs) {
    b.writeBigUInt64LE(BigInt(CMSG_HDR + m.data.length), o);
    b.writeInt32LE(m.level, o + 8);
    b.writeInt32LE(m.type, o + 12);
    m.data.copy(b, o + CMSG_HDR);
    o += cmsgSpace(m.data.length);
  }
  return b;
}

/** Splits a control buffer of `length` used bytes into messages (copies of their data). */
export function decodeCmsgs(b: Buffer, length = b.length): Cmsg[] {
  const out: Cmsg[] = [];
  let o = 0;
  while (o + CMSG_HDR <= length) {
    const len = Number(b.readBigUInt64LE(o));
    if (len < CMSG_HDR || o + len > length) break;
    out.push({
      level: b.readInt32LE(o + 8),
      type: b.readInt32LE(o + 12),
      data: Buffer.from(b.subarray(o + CMSG_HDR, o + len)),
    });
    o += align(len);
  }
  return out;
}

/** SCM_RIGHTS: pass file descriptors. */
export function rightsCmsg(fds: readonly number[]): Cmsg {
  if (fds.length === 0 || fds.length > 253)
    throw new InvalidArgumentError(`SCM_RIGHTS takes 1 to 253 fds, not ${fds.length}`);
  const data = Buffer.alloc(fds.length * 4);
  fds.forEach((fd, i) => data.writeInt32LE(fd, i * 4));
  return { level: SOL.SOCKET, type: SCM.RIGHTS, data };
}

/** SCM_CREDENTIALS: send (our own, or as root any) pid/uid/gid. */
export function credentialsCmsg(cred: Ucred): Cmsg {
  const data = Buffer.alloc(12);
  data.writeInt32LE(cred.pid, 0);
  data.writeUInt32LE(cred.uid, 4);
  data.writeUInt32LE(cred.gid, 8);
  return { level: SOL.SOCKET, type: SCM.CREDENTIALS, data };
}

/** IP_PKTINFO for sendmsg: the interface and source address to send from. */
export function pktinfoCmsg(info: { ifindex?: number; specDst?: string }): Cmsg {
  const data = Buffer.alloc(12);
  data.writeInt32LE(info.ifindex ?? 0, 0);
  ipv4Bytes(info.specDst ?? '0.0.0.0').copy(data, 4);
  return { level: SOL.IP, type: IP.PKTINFO, data };
}

/** The fds of every SCM_RIGHTS message (they are the receiver's to close). */
export function receivedFds(msgs: readonly Cmsg[]): number[] {
  const fds: number[] = [];
  for (const m of msgs)
    if (m.level === SOL.SOCKET && m.type === SCM.RIGHTS)
      for (let o = 0; o + 4 <= m.data.length; o += 4) fds.push(m.data.readInt32LE(o));
  return fds;
}

/** The SCM_CREDENTIALS of a message, when SO_PASSCRED was on. */
export function receivedCredentials(msgs: readonly Cmsg[]): Ucred | undefined {
  const m = msgs.find((x) => x.level === SOL.SOCKET && x.type === SCM.CREDENTIALS && x.data.length >= 12);
  return m && { pid: m.data.readInt32LE(0), uid: m.data.readUInt32LE(4), gid: m.data.readUInt32LE(8) };
}

/** The IP_PKTINFO of a received datagram, when IP_PKTINFO was set on the socket. */
export function receivedPktinfo(msgs: readonly Cmsg[]): PktInfo | undefined {
  const m = msgs.find((x) => x.level === SOL.IP && x.type === IP.PKTINFO && x.data.length >= 12);
  return (
    m && {
      ifindex: m.data.readInt32LE(0),
      specDst: formatIPv4(m.data.subarray(4, 8)),
      addr: formatIPv4(m.data.subarray(8, 12)),
    }
  );
}

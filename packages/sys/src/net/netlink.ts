import { InvalidArgumentError, SdError, SyscallError } from '../errors.js';
import { closeQuietly } from '../fd/fd.js';
import { poller } from '../poller/poller.js';
import { AF, parseSockaddr, SOCK, SOL, sockaddrNl } from './sockaddr.js';
import { bind, getsockname, recvfrom, sendto, setsockopt, socket } from './socket.js';

/** Netlink families (protocols of AF_NETLINK sockets). */
export const NETLINK = { ROUTE: 0, NETFILTER: 12, KOBJECT_UEVENT: 15, GENERIC: 16 } as const;
/** Options at SOL_NETLINK. */
export const NETLINK_OPT = {
  ADD_MEMBERSHIP: 1,
  DROP_MEMBERSHIP: 2,
  EXT_ACK: 11,
  GET_STRICT_CHK: 12,
} as const;

export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;
export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  ECHO: 0x8,
  DUMP_INTR: 0x10,
  ROOT: 0x100,
  MATCH: 0x200,
  DUMP: 0x300,
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;
export const NLA_F = { NESTED: 0x8000, NET_BYTEORDER: 0x4000, TYPE_MASK: 0x3fff } as const;
const NLMSGERR_ATTR_MSG = 1;

export const NLMSG_HDRLEN = 16;
const align4 = (n: number) => (n + 3) & ~3;

/** One netlink message: struct nlmsghdr and its payload. */
export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

export function encodeNlmsg(msg: {
  type: number;
  flags: number;
  seq?: number;
  pid?: number;
  payload?: Buffer;
}): Buffer {
  const payload = msg.payload ?? Buffer.alloc(0);
  const b = Buffer.alloc(align4(NLMSG_HDRLEN + payload.length));
  b.writeUInt32LE(NLMSG_HDRLEN + payload.length, 0);
  b.writeUInt16LE(msg.type, 4);
  b.writeUInt16LE(msg.flags, 6);
  b.writeUInt32LE(msg.seq ?? 0, 8);
  b.writeUInt32LE(msg.pid ?? 0, 12);
  payload.copy(b, NLMSG_HDRLEN);
  return b;
}

/** Splits a datagram into messages; a malformed length ends the walk with an error. */
export function decodeNlmsgs(b: Buffer): NlMsg[] {
  const out: NlMsg[] = [];
  let o = 0;
  while (o + NLMSG_HDRLEN <= b.length) {
    const len = b.readUInt32LE(o);
    if (len < NLMSG_HDRLEN || o + len > b.length)
      throw new SdError(
        'EBADMSG',
        `netlink: message of length ${len} at offset ${o} overruns ${b.length} bytes`,
      );
    out.push({
      type: b.readUInt16LE(o + 4),
      flags: b.readUInt16LE(o + 6),
      seq: b.readUInt32LE(o + 8),
      pid: b.readUInt32LE(o + 12),
      payload: b.subarray(o + NLMSG_HDRLEN, o + len),
    });
    o += align4(len);
  }
  return out;
}

/** A route attribute (struct rtattr / nlattr). `value` may be nested attributes. */
export interface Attr {
  type: number;
  value: Buffer | readonly Attr[];
}

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const nested = !Buffer.isBuffer(a.value);
    const value = Buffer.isBuffer(a.value) ? a.value : encodeAttrs(a.value as readonly Attr[]);
    if (4 + value.length > 0xffff) throw new InvalidArgumentError(`netlink attribute ${a.type} is too long`);
    const b = Buffer.alloc(align4(4 + value.length));
    b.writeUInt16LE(4 + value.length, 0);
    b.writeUInt16LE(a.type | (nested ? NLA_F.NESTED : 0), 2);
    value.copy(b, 4);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

/** A decoded attribute: its type without the NESTED/NET_BYTEORDER flags, and its bytes. */
export interface RawAttr {
  type: number;
  flags: number;
  value: Buffer;
}

export function decodeAttrs(b: Buffer): RawAttr[] {
  const out: RawAttr[] = [];
  let o = 0;
  while (o + 4 <= b.length) {
    const len = b.readUInt16LE(o);
    if (len < 4 || o + len > b.length) break;
    const t = b.readUInt16LE(o + 2);
    out.push({ type: t & NLA_F.TYPE_MASK, flags: t & ~NLA_F.TYPE_MASK, value: b.subarray(o + 4, o + len) });
    o += align4(len);
  }
  return out;
}

/** Attributes by type (the last one wins when a type repeats). */
export function attrMap(b: Buffer): Map<number, Buffer> {
  return new Map(decodeAttrs(b).map((a) => [a.type, a.value]));
}

export const attr = {
  u8: (type: number, v: number): Attr => ({ type, value: Buffer.of(v) }),
  u16: (type: number, v: number): Attr => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v);
    return { type, value: b };
  },
  u32: (type: number, v: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return { type, value: b };
  },
  /** A NUL-terminated string, as the kernel wants names (IFLA_IFNAME). */
  string: (type: number, s: string): Attr => ({ type, value: Buffer.concat([Buffer.from(s), Buffer.of(0)]) }),
  nested: (type: number, attrs: readonly Attr[]): Attr => ({ type, value: attrs }),
  /** Reads a NUL-terminated string value. */
  readString: (b: Buffer): string => {
    const nul = b.indexOf(0);
    return b.subarray(0, nul < 0 ? b.length : nul).toString();
  },
};

/**
 * The error an NLMSG_ERROR carries: undefined for an ACK (error 0), else a
 * SyscallError with the errno and, when the kernel sent one, its extended
 * ack message ("Invalid MTU").
 */
export function nlmsgError(msg: NlMsg, what = 'netlink'): SyscallError | undefined {
  if (msg.payload.length < 4) return new SyscallError(what, 74 /* EBADMSG */);
  const error = msg.payload.readInt32LE(0);
  if (error === 0) return undefined;
  const err = new SyscallError(what, -error);
  if (msg.flags & NLM_F.ACK_TLVS) {
    // After the error comes the request's header (and all of it unless NLM_F_CAPPED), then the TLVs.
    const reqLen = msg.payload.length >= 8 ? msg.payload.readUInt32LE(4) : NLMSG_HDRLEN;
    const skip = 4 + (msg.flags & NLM_F.CAPPED ? NLMSG_HDRLEN : align4(reqLen));
    const text = attrMap(msg.payload.subarray(skip)).get(NLMSGERR_ATTR_MSG);
    if (text) err.message += `: ${attr.readString(text)}`;
  }
  return err;
}

const DUMP_ATTEMPTS = 10;

class DumpInterrupted extends SdError {
  constructor() {
    super('EINTR', `netlink dump was interrupted by changes ${DUMP_ATTEMPTS} times in a row`);
  }
}

type Pending = {
  messages: NlMsg[];
  dump: boolean;
  /** A part came with NLM_F_DUMP_INTR: the dump is read to its end, then retried. */
  interrupted?: boolean;
  resolve: (m: NlMsg[]) => void;
  reject: (e: Error) => void;
};

/**
 * An AF_NETLINK socket talking to the kernel: requests and dumps matched to
 * their replies by sequence number, and multicast notifications, all read
 * through the poller. Messages not from the kernel (port id 0) are dropped.
 */
export class NetlinkSocket {
  readonly fd: number;
  readonly protocol: number;
  /** Our port id, assigned by the kernel at bind. */
  readonly portId: number;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly pending = new Map<number, Pending>();
  private listener: ((m: NlMsg) => void) | undefined;
  /** Where datagrams are read: one buffer for the socket's life (dispatch copies what it keeps). */
  private rbuf: Buffer | undefined;
  private watching = false;
  private closed = false;

  constructor(protocol: number, options: { groups?: number; extendedAck?: boolean } = {}) {
    this.protocol = protocol;
    this.fd = socket(AF.NETLINK, SOCK.RAW, protocol);
    try {
      setsockopt(this.fd, SOL.SOCKET, 33 /* SO_RCVBUFFORCE */, 1 << 20);
    } catch {
      // Without CAP_NET_ADMIN the default buffer has to do.
    }
    try {
      if (options.extendedAck ?? true) setsockopt(this.fd, SOL.NETLINK, NETLINK_OPT.EXT_ACK, 1);
      bind(this.fd, sockaddrNl({ groups: options.groups ?? 0 }));
      const me = parseSockaddr(getsockname(this.fd));
      this.portId = me?.family === 'netlink' ? me.pid : 0;
    } catch (e) {
      closeQuietly(this.fd);
      throw e;
    }
  }

  /** Joins a multicast group (RTNLGRP_LINK...) by number. */
  addMembership(group: number): void {
    setsockopt(this.fd, SOL.NETLINK, NETLINK_OPT.ADD_MEMBERSHIP, group);
  }

  /** Receives multicast notifications (messages with sequence 0) until close(). */
  onNotification(listener: (m: NlMsg) => void): void {
    this.listener = listener;
    this.watch();
  }

  /**
   * Sends a request and resolves with its replies. With NLM_F_DUMP in
   * `flags`, all parts up to NLMSG_DONE; otherwise an ACK is requested and
   * the replies before it are returned. NLMSG_ERROR rejects with a
   * SyscallError carrying the kernel's errno.
   */
  request(type: number, flags: number, payload: Buffer = Buffer.alloc(0)): Promise<NlMsg[]> {
    if (this.closed) return Promise.reject(new SdError('EBADF', 'netlink socket is closed'));
    const dump = (flags & NLM_F.DUMP) === NLM_F.DUMP;
    this.seq = (this.seq + 1) >>> 0 || 1;
    const seq = this.seq;
    const msg = encodeNlmsg({ type, flags: flags | NLM_F.REQUEST | (dump ? 0 : NLM_F.ACK), seq, payload });
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { messages: [], dump, resolve, reject });
      try {
        if (sendto(this.fd, msg, sockaddrNl()) < 0) throw new SyscallError('sendto', 11 /* EAGAIN */);
      } catch (e) {
        this.pending.delete(seq);
        reject(e);
        return;
      }
      this.watch();
    });
  }

  /** A dump request (NLM_F_DUMP): every object of the kind, across as many datagrams as it takes. */
  async dump(type: number, payload?: Buffer): Promise<NlMsg[]> {
    // A change during the dump (links coming and going as other containers
    // start) makes it inconsistent; a fresh one is, as iproute2 retries too.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.request(type, NLM_F.DUMP, payload);
      } catch (e) {
        if (!(e instanceof DumpInterrupted) || attempt === DUMP_ATTEMPTS) throw e;
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watching) poller().remove(this.fd);
    this.watching = false;
    closeQuietly(this.fd);
    const err = new SdError('ECANCELED', 'netlink socket closed');
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private watch(): void {
    if (this.watching || this.closed) return;
    this.watching = true;
    poller().add(this.fd, () => this.readAll());
  }

  private unwatchIfIdle(): void {
    if (this.watching && this.pending.size === 0 && !this.listener) {
      poller().remove(this.fd);
      this.watching = false;
    }
  }

  private readAll(): void {
    for (;;) {
      let r: ReturnType<typeof recvfrom>;
      try {
        this.rbuf ??= Buffer.allocUnsafe(1 << 16);
        r = recvfrom(this.fd, 1 << 16, 0, this.rbuf);
      } catch (e) {
        // ENOBUFS: the kernel dropped messages; in-flight requests cannot be trusted.
        for (const p of this.pending.values()) p.reject(e as Error);
        this.pending.clear();
        break;
      }
      if (!r) break;
      const from = parseSockaddr(r.from);
      if (from?.family !== 'netlink' || from.pid !== 0) continue;
      let msgs: NlMsg[];
      try {
        msgs = decodeNlmsgs(r.data);
      } catch {
        continue;
      }
      for (const m of msgs) this.dispatch(m);
    }
    this.unwatchIfIdle();
  }

  private dispatch(m: NlMsg): void {
    // Replies carry our port id; a notification carries the port id and
    // sequence number of whoever caused it (0 when the kernel did).
    const p = m.seq === 0 || m.pid !== this.portId ? undefined : this.pending.get(m.seq);
    if (!p) {
      if (this.listener) this.listener({ ...m, payload: Buffer.from(m.payload) });
      return;
    }
    const finish = (e?: Error) => {
      this.pending.delete(m.seq);
      if (e) p.reject(e);
      else p.resolve(p.messages);
    };
    if (m.flags & NLM_F.DUMP_INTR) p.interrupted = true;
    if (m.type === NLMSG.ERROR) finish(nlmsgError(m));
    else if (m.type === NLMSG.DONE) {
      const error = m.payload.length >= 4 ? m.payload.readInt32LE(0) : 0;
      // Read to the end first: the kernel refuses a new dump while one runs (EBUSY).
      if (error >= 0 && p.interrupted) finish(new DumpInterrupted());
      else finish(error < 0 ? new SyscallError('netlink dump', -error) : undefined);
    } else if (m.type !== NLMSG.NOOP) p.messages.push({ ...m, payload: Buffer.from(m.payload) });
  }
}

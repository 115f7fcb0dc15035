import { InvalidArgumentError } from '../errors.js';
import { view } from '../view.js';

// Address checks of our own, accepting what node:net's isIPv4/isIPv6 accept (a property test
// holds them to it): loading node:net (streams, dns) costs a container start's network ~4 ms.
const V4_OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const V4 = new RegExp(`^${V4_OCTET}(?:\\.${V4_OCTET}){3}$`);
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;
const V6_ZONE = /^[0-9a-zA-Z.:-]+$/;

/** Dotted quad, no leading zeros (as inet_pton). */
export function isIPv4(address: string): boolean {
  return V4.test(address);
}

/** Hexadecimal groups, at most one `::`, an optional dotted quad last, an optional `%zone`. */
export function isIPv6(address: string): boolean {
  const pct = address.indexOf('%');
  if (pct >= 0 && !V6_ZONE.test(address.slice(pct + 1))) return false;
  const a = pct >= 0 ? address.slice(0, pct) : address;
  const halves = a.split('::');
  if (halves.length > 2) return false;
  let count = 0;
  for (let h = 0; h < halves.length; h++) {
    const half = halves[h]!;
    if (half === '') continue;
    const groups = half.split(':');
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      // A dotted quad is two groups, and only ever the address's last.
      if (h === halves.length - 1 && i === groups.length - 1 && g.includes('.')) {
        if (!V4.test(g)) return false;
        count += 2;
      } else if (V6_GROUP.test(g)) count++;
      else return false;
    }
  }
  // `::` stands for one zero group at least.
  return halves.length === 2 ? count <= 7 : count === 8;
}

// Socket constants; the same on x86_64 and aarch64 (both use the generic values).

export const AF = { UNSPEC: 0, UNIX: 1, INET: 2, INET6: 10, NETLINK: 16, PACKET: 17 } as const;

export const SOCK = {
  STREAM: 1,
  DGRAM: 2,
  RAW: 3,
  SEQPACKET: 5,
  NONBLOCK: 0o4000,
  CLOEXEC: 0o2000000,
} as const;

export const SOL = { IP: 0, SOCKET: 1, IPV6: 41, PACKET: 263, NETLINK: 270 } as const;

export const SO = {
  REUSEADDR: 2,
  TYPE: 3,
  ERROR: 4,
  BROADCAST: 6,
  SNDBUF: 7,
  RCVBUF: 8,
  PASSCRED: 16,
  PEERCRED: 17,
  BINDTODEVICE: 25,
  ATTACH_FILTER: 26,
  TIMESTAMP: 29,
  SNDBUFFORCE: 32,
  RCVBUFFORCE: 33,
  PROTOCOL: 38,
} as const;

export const IPPROTO = { IP: 0, ICMP: 1, TCP: 6, UDP: 17, IPV6: 41, ICMPV6: 58, RAW: 255 } as const;

export const IP = {
  PKTINFO: 8,
  MULTICAST_IF: 32,
  MULTICAST_TTL: 33,
  MULTICAST_LOOP: 34,
  ADD_MEMBERSHIP: 35,
} as const;
export const IPV6 = { RECVPKTINFO: 49, PKTINFO: 50, V6ONLY: 26, MULTICAST_HOPS: 18, JOIN_GROUP: 20 } as const;

export const MSG = {
  OOB: 1,
  PEEK: 2,
  DONTROUTE: 4,
  CTRUNC: 8,
  TRUNC: 0x20,
  DONTWAIT: 0x40,
  EOR: 0x80,
  WAITALL: 0x100,
  NOSIGNAL: 0x4000,
  CMSG_CLOEXEC: 0x40000000,
} as const;

export const ETH_P = { ALL: 0x0003, IP: 0x0800, ARP: 0x0806, IPV6: 0x86dd } as const;

export const PACKET = {
  HOST: 0,
  BROADCAST: 1,
  MULTICAST: 2,
  OTHERHOST: 3,
  OUTGOING: 4,
  ADD_MEMBERSHIP: 1,
  AUXDATA: 8,
} as const;

/** The two bytes of a 16-bit value in network order, read as a host-order number (htons). */
export function htons(v: number): number {
  return ((v & 0xff) << 8) | ((v >> 8) & 0xff);
}

/** struct sockaddr_nl (12 bytes). `pid` 0 lets the kernel pick the port id. */
export function sockaddrNl(opts: { pid?: number; groups?: number } = {}): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16LE(AF.NETLINK, 0);
  b.writeUInt32LE(opts.pid ?? 0, 4);
  b.writeUInt32LE(opts.groups ?? 0, 8);
  return b;
}

export interface SockaddrLl {
  /** Ethertype in host order (ETH_P.ARP); written in network order. */
  protocol: number;
  ifindex: number;
  hatype?: number;
  pkttype?: number;
  /** Hardware address (6 bytes for ethernet). */
  addr?: Buffer;
}

/** struct sockaddr_ll (20 bytes). */
export function sockaddrLl(opts: SockaddrLl): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt16LE(AF.PACKET, 0);
  b.writeUInt16BE(opts.protocol, 2);
  b.writeInt32LE(opts.ifindex, 4);
  b.writeUInt16LE(opts.hatype ?? 0, 8);
  b.writeUInt8(opts.pkttype ?? 0, 10);
  const addr = opts.addr ?? Buffer.alloc(0);
  if (addr.length > 8) throw new InvalidArgumentError(`hardware address of ${addr.length} bytes (max 8)`);
  b.writeUInt8(addr.length, 11);
  addr.copy(b, 12);
  return b;
}

/** struct sockaddr_in (16 bytes). */
export function sockaddrIn(address: string, port = 0): Buffer {
  if (!isIPv4(address)) throw new InvalidArgumentError(`not an IPv4 address: '${address}'`);
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF.INET, 0);
  b.writeUInt16BE(port, 2);
  ipv4Bytes(address).copy(b, 4);
  return b;
}

/** struct sockaddr_in6 (28 bytes). */
export function sockaddrIn6(address: string, port = 0, scopeId = 0, flowinfo = 0): Buffer {
  if (!isIPv6(address)) throw new InvalidArgumentError(`not an IPv6 address: '${address}'`);
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF.INET6, 0);
  b.writeUInt16BE(port, 2);
  b.writeUInt32BE(flowinfo, 4);
  ipv6Bytes(address).copy(b, 8);
  b.writeUInt32LE(scopeId, 24);
  return b;
}

/**
 * struct sockaddr_un: a path, or an abstract name when it starts with '@'
 * (as systemd and ss print them). Its length is the used part only.
 */
export function sockaddrUn(path: string): Buffer {
  const abstract = path.startsWith('@');
  const name = Buffer.from(abstract ? path.slice(1) : path);
  if (name.length > 107 || name.length === 0)
    throw new InvalidArgumentError(`unix socket path of ${name.length} bytes: '${path}'`);
  const b = Buffer.alloc(2 + (abstract ? 1 : 0) + name.length + (abstract ? 0 : 1));
  view(b).setUint16(0, AF.UNIX, true);
  b.set(name, abstract ? 3 : 2);
  return b;
}

export function ipv4Bytes(address: string): Buffer {
  if (!isIPv4(address)) throw new InvalidArgumentError(`not an IPv4 address: '${address}'`);
  return Buffer.from(address.split('.').map(Number));
}

export function ipv6Bytes(address: string): Buffer {
  if (!isIPv6(address)) throw new InvalidArgumentError(`not an IPv6 address: '${address}'`);
  let a = address.split('%')[0] ?? '';
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4?.[1]) {
    const q = ipv4Bytes(v4[1]);
    a = `${a.slice(0, -v4[1].length)}${q.readUInt16BE(0).toString(16)}:${q.readUInt16BE(2).toString(16)}`;
  }
  const [head = '', tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(Number.parseInt(g, 16), i * 2));
  return b;
}

export function formatIPv4(b: Buffer): string {
  return [...b.subarray(0, 4)].join('.');
}

export function formatIPv6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // Collapse the longest run of zero groups, as RFC 5952 asks.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export type SocketAddress =
  | { family: 'netlink'; pid: number; groups: number }
  | { family: 'packet'; protocol: number; ifindex: number; hatype: number; pkttype: number; addr: Buffer }
  | { family: 'inet'; address: string; port: number }
  | { family: 'inet6'; address: string; port: number; scopeId: number; flowinfo: number }
  | { family: 'unix'; path: string }
  | { family: 'other'; af: number; bytes: Buffer };

/** Decodes a sockaddr the kernel filled in (recvfrom, recvmsg, getsockname). */
export function parseSockaddr(b: Buffer): SocketAddress | undefined {
  if (b.length < 2) return undefined;
  const af = b.readUInt16LE(0);
  if (af === AF.NETLINK && b.length >= 12)
    return { family: 'netlink', pid: b.readUInt32LE(4), groups: b.readUInt32LE(8) };
  if (af === AF.PACKET && b.length >= 12) {
    const halen = Math.min(b.readUInt8(11), 8);
    return {
      family: 'packet',
      protocol: b.readUInt16BE(2),
      ifindex: b.readInt32LE(4),
      hatype: b.readUInt16LE(8),
      pkttype: b.readUInt8(10),
      addr: Buffer.from(b.subarray(12, 12 + halen)),
    };
  }
  if (af === AF.INET && b.length >= 8)
    return { family: 'inet', address: formatIPv4(b.subarray(4, 8)), port: b.readUInt16BE(2) };
  if (af === AF.INET6 && b.length >= 28)
    return {
      family: 'inet6',
      address: formatIPv6(b.subarray(8, 24)),
      port: b.readUInt16BE(2),
      flowinfo: b.readUInt32BE(4),
      scopeId: b.readUInt32LE(24),
    };
  if (af === AF.UNIX) {
    const p = b.subarray(2);
    if (p.length > 0 && p[0] === 0) return { family: 'unix', path: `@${p.subarray(1).toString()}` };
    const nul = p.indexOf(0);
    return { family: 'unix', path: p.subarray(0, nul < 0 ? p.length : nul).toString() };
  }
  return { family: 'other', af, bytes: Buffer.from(b) };
}

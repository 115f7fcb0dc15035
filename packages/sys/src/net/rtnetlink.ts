import { attr, attrMap, NETLINK, NetlinkSocket, type NlMsg } from './netlink.js';
import { AF } from './sockaddr.js';

/** rtnetlink message types (linux/rtnetlink.h). */
export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
} as const;

/** Link attributes (linux/if_link.h), the common ones. */
export const IFLA = {
  ADDRESS: 1,
  BROADCAST: 2,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  OPERSTATE: 16,
  LINKINFO: 18,
  NET_NS_PID: 19,
  NET_NS_FD: 28,
  INFO_KIND: 1,
  INFO_DATA: 2,
} as const;

/** Interface flags (linux/if.h). */
export const IFF = {
  UP: 0x1,
  BROADCAST: 0x2,
  LOOPBACK: 0x8,
  RUNNING: 0x40,
  NOARP: 0x80,
  LOWER_UP: 0x10000,
} as const;

/** struct ifinfomsg (16 bytes). */
export interface IfInfoMsg {
  family: number;
  type: number;
  index: number;
  flags: number;
  change: number;
}

export function encodeIfinfomsg(m: Partial<IfInfoMsg> = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(m.family ?? AF.UNSPEC, 0);
  b.writeUInt16LE(m.type ?? 0, 2);
  b.writeInt32LE(m.index ?? 0, 4);
  b.writeUInt32LE((m.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((m.change ?? 0) >>> 0, 12);
  return b;
}

export function decodeIfinfomsg(b: Buffer): IfInfoMsg {
  return {
    family: b.readUInt8(0),
    type: b.readUInt16LE(2),
    index: b.readInt32LE(4),
    flags: b.readUInt32LE(8),
    change: b.readUInt32LE(12),
  };
}

export interface LinkInfo {
  index: number;
  name: string;
  flags: number;
  /** ARPHRD_* (1 ethernet, 772 loopback). */
  type: number;
  mtu?: number;
  /** Hardware address as aa:bb:cc:dd:ee:ff. */
  address?: string;
}

/** Decodes an RTM_NEWLINK message. */
export function parseLink(m: NlMsg): LinkInfo {
  const info = decodeIfinfomsg(m.payload);
  const attrs = attrMap(m.payload.subarray(16));
  const link: LinkInfo = { index: info.index, name: '', flags: info.flags, type: info.type };
  const name = attrs.get(IFLA.IFNAME);
  if (name) link.name = attr.readString(name);
  const mtu = attrs.get(IFLA.MTU);
  if (mtu && mtu.length >= 4) link.mtu = mtu.readUInt32LE(0);
  const addr = attrs.get(IFLA.ADDRESS);
  if (addr) link.address = [...addr].map((x) => x.toString(16).padStart(2, '0')).join(':');
  return link;
}

/** Every link of the network namespace `sock` (or a new NETLINK_ROUTE socket) lives in. */
export async function listLinks(sock?: NetlinkSocket): Promise<LinkInfo[]> {
  const s = sock ?? new NetlinkSocket(NETLINK.ROUTE);
  try {
    const msgs = await s.dump(RTM.GETLINK, encodeIfinfomsg());
    return msgs.filter((m) => m.type === RTM.NEWLINK).map(parseLink);
  } finally {
    if (!sock) s.close();
  }
}

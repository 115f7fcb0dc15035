import { InvalidArgumentError } from '../errors.js';
import { attr, attrMap, decodeAttrs, NETLINK, NetlinkSocket, type NlMsg } from './netlink.js';
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
  NEWLINKPROP: 108,
  DELLINKPROP: 109,
} as const;

/** Multicast groups of NETLINK_ROUTE, by number (for addMembership). */
export const RTNLGRP = { LINK: 1, IPV4_IFADDR: 5, IPV4_ROUTE: 7, IPV6_IFADDR: 9 } as const;

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
  IFALIAS: 20,
  NET_NS_FD: 28,
  PROP_LIST: 52,
  ALT_IFNAME: 53,
  INFO_KIND: 1,
  INFO_DATA: 2,
} as const;

/** Nested attributes of IFLA_LINKINFO / IFLA_INFO_DATA for the kinds we make. */
export const IFLA_INFO = { KIND: 1, DATA: 2, SLAVE_KIND: 4 } as const;
export const VETH_INFO = { PEER: 1 } as const;
export const IFLA_MACVLAN = { MODE: 1 } as const;
export const MACVLAN_MODE = { PRIVATE: 1, VEPA: 2, BRIDGE: 4, PASSTHRU: 8, SOURCE: 16 } as const;

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
  /** IFLA_INFO_KIND: veth, bridge, macvlan... (absent for physical links). */
  kind?: string;
  /** The bridge (or bond) this link is a port of. */
  master?: number;
  /** IFLA_LINK: the peer or parent link's index (in the peer's namespace for a veth). */
  link?: number;
  /** IFLA_IFALIAS, the free-text description. */
  alias?: string;
  operState?: number;
  altNames?: string[];
}

/** aa:bb:cc:dd:ee:ff */
export function formatMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Parses aa:bb:cc:dd:ee:ff (or with dashes) into its 6 bytes. */
export function parseMac(s: string): Buffer {
  if (!/^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i.test(s))
    throw new InvalidArgumentError(`not a MAC address: '${s}'`);
  return Buffer.from(s.replace(/[:-]/g, ''), 'hex');
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
  if (addr) link.address = formatMac(addr);
  const u32 = (t: number) => {
    const v = attrs.get(t);
    return v && v.length >= 4 ? v.readUInt32LE(0) : undefined;
  };
  const master = u32(IFLA.MASTER);
  if (master) link.master = master;
  const parent = u32(IFLA.LINK);
  if (parent !== undefined) link.link = parent;
  const alias = attrs.get(IFLA.IFALIAS);
  if (alias) link.alias = attr.readString(alias);
  const op = attrs.get(IFLA.OPERSTATE);
  if (op?.length) link.operState = op[0];
  const linkinfo = attrs.get(IFLA.LINKINFO);
  if (linkinfo) {
    const kind = attrMap(linkinfo).get(IFLA_INFO.KIND);
    if (kind) link.kind = attr.readString(kind);
  }
  const props = attrs.get(IFLA.PROP_LIST);
  if (props)
    link.altNames = decodeAttrs(props)
      .filter((a) => a.type === IFLA.ALT_IFNAME)
      .map((a) => attr.readString(a.value));
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

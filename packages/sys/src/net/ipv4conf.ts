import { InvalidArgumentError } from '../errors.js';
import {
  type Attr,
  attr,
  attrMap,
  encodeAttrs,
  NETLINK,
  NetlinkSocket,
  NLM_F,
  type NlMsg,
} from './netlink.js';
import { RTM } from './rtnetlink.js';
import { AF, formatIPv4, ipv4Bytes } from './sockaddr.js';

/**
 * IPv4 addresses and routes of one link through rtnetlink: what a DHCP
 * client and IPv4 link-local need (an address with lifetimes, a default
 * route through a gateway), on a NETLINK_ROUTE socket that may have been
 * opened in another network namespace.
 */

// linux/if_addr.h, linux/rtnetlink.h
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_BROADCAST = 4;
const IFA_CACHEINFO = 6;
const IFA_FLAGS = 8;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_TABLE = 15;
const INFINITY_LIFE = 0xffffffff;

// Module-private: the general rtnetlink constants live with the link/route code of @sd/sys.
const RT_SCOPE = { UNIVERSE: 0, LINK: 253 } as const;
const RT_TABLE_MAIN = 254;
const ROUTE_PROTOCOLS = { kernel: 2, boot: 3, static: 4, dhcp: 16 } as const;
export type IPv4RouteProtocol = keyof typeof ROUTE_PROTOCOLS;
const RTN_UNICAST = 1;

export interface IPv4AddressSpec {
  ifindex: number;
  address: string;
  prefixLength: number;
  /** Seconds; the kernel removes the address when it runs out (default: forever). */
  validLifetime?: number;
  preferredLifetime?: number;
  /** 'link' for 169.254/16 (default 'global'). */
  scope?: 'global' | 'link';
  /** Adds the directed broadcast address (default true). */
  broadcast?: boolean;
}

export interface IPv4AddressInfo {
  ifindex: number;
  address: string;
  prefixLength: number;
  /** RT_SCOPE_*: 0 global, 253 link, 254 host. */
  scope: number;
  /** Scope global: an address the link can be reached at from off the link. */
  global: boolean;
  flags: number;
}

function checkPrefix(prefixLength: number): void {
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 32)
    throw new InvalidArgumentError(`IPv4 prefix length ${prefixLength} is not in 0..32`);
}

function ifaddrmsg(ifindex: number, prefixLength: number, scope: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(AF.INET, 0);
  b.writeUInt8(prefixLength, 1);
  b.writeUInt8(0, 2);
  b.writeUInt8(scope, 3);
  b.writeUInt32LE(ifindex, 4);
  return b;
}

/** The directed broadcast address of `address/prefixLength`. */
export function ipv4Broadcast(address: string, prefixLength: number): string {
  checkPrefix(prefixLength);
  const a = ipv4Bytes(address).readUInt32BE(0);
  const mask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  const b = Buffer.alloc(4);
  b.writeUInt32BE((a | ~mask) >>> 0);
  return formatIPv4(b);
}

function addressPayload(spec: IPv4AddressSpec, withInfo: boolean): Buffer {
  checkPrefix(spec.prefixLength);
  const a = ipv4Bytes(spec.address);
  const attrs: Attr[] = [
    { type: IFA_LOCAL, value: a },
    { type: IFA_ADDRESS, value: a },
  ];
  if (withInfo) {
    if ((spec.broadcast ?? true) && spec.prefixLength < 31)
      attrs.push({ type: IFA_BROADCAST, value: ipv4Bytes(ipv4Broadcast(spec.address, spec.prefixLength)) });
    const valid = spec.validLifetime ?? INFINITY_LIFE;
    const preferred = spec.preferredLifetime ?? valid;
    const ci = Buffer.alloc(16);
    ci.writeUInt32LE(Math.min(preferred, valid) >>> 0, 0);
    ci.writeUInt32LE(valid >>> 0, 4);
    attrs.push({ type: IFA_CACHEINFO, value: ci });
    attrs.push(attr.u32(IFA_FLAGS, 0));
  }
  return Buffer.concat([
    ifaddrmsg(spec.ifindex, spec.prefixLength, spec.scope === 'link' ? RT_SCOPE.LINK : RT_SCOPE.UNIVERSE),
    encodeAttrs(attrs),
  ]);
}

async function withSocket<T>(
  sock: NetlinkSocket | undefined,
  fn: (s: NetlinkSocket) => Promise<T>,
): Promise<T> {
  const s = sock ?? new NetlinkSocket(NETLINK.ROUTE);
  try {
    return await fn(s);
  } finally {
    if (!sock) s.close();
  }
}

/** Adds the address, or updates its lifetimes when it is there already (a DHCP renewal). */
export async function addIPv4Address(spec: IPv4AddressSpec, sock?: NetlinkSocket): Promise<void> {
  const payload = addressPayload(spec, true);
  return withSocket(sock, async (s) => {
    await s.request(RTM.NEWADDR, NLM_F.CREATE | NLM_F.REPLACE, payload);
  });
}

/** Removes the address; `missingOk` (default) makes an already missing one not an error. */
export async function removeIPv4Address(
  spec: Pick<IPv4AddressSpec, 'ifindex' | 'address' | 'prefixLength'>,
  sock?: NetlinkSocket,
  missingOk = true,
): Promise<void> {
  const payload = addressPayload(spec, false);
  return withSocket(sock, async (s) => {
    try {
      await s.request(RTM.DELADDR, 0, payload);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (!(missingOk && (code === 'EADDRNOTAVAIL' || code === 'ENODEV'))) throw e;
    }
  });
}

export function parseIPv4Address(m: NlMsg): IPv4AddressInfo | undefined {
  if (m.payload.length < 8 || m.payload.readUInt8(0) !== AF.INET) return undefined;
  const attrs = attrMap(m.payload.subarray(8));
  const a = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
  if (!a || a.length < 4) return undefined;
  const flags = attrs.get(IFA_FLAGS);
  return {
    ifindex: m.payload.readUInt32LE(4),
    address: formatIPv4(a),
    prefixLength: m.payload.readUInt8(1),
    scope: m.payload.readUInt8(3),
    global: m.payload.readUInt8(3) === RT_SCOPE.UNIVERSE,
    flags: flags && flags.length >= 4 ? flags.readUInt32LE(0) : m.payload.readUInt8(2),
  };
}

/** The IPv4 addresses of one link (or of all links when `ifindex` is omitted). */
export async function listIPv4Addresses(ifindex?: number, sock?: NetlinkSocket): Promise<IPv4AddressInfo[]> {
  return withSocket(sock, async (s) => {
    const msgs = await s.dump(RTM.GETADDR, ifaddrmsg(0, 0, 0));
    return msgs
      .filter((m) => m.type === RTM.NEWADDR)
      .map(parseIPv4Address)
      .filter((a): a is IPv4AddressInfo => !!a && (ifindex === undefined || a.ifindex === ifindex));
  });
}

export interface IPv4RouteSpec {
  ifindex: number;
  /** Destination network; omitted for the default route. */
  destination?: string;
  prefixLength?: number;
  gateway?: string;
  /** Preferred source address. */
  source?: string;
  metric?: number;
  /** Who made the route (default 'static'); 'dhcp' for a lease's routes. */
  protocol?: IPv4RouteProtocol;
  table?: number;
}

function routePayload(spec: IPv4RouteSpec): Buffer {
  const dstLen = spec.destination === undefined ? 0 : (spec.prefixLength ?? 32);
  checkPrefix(dstLen);
  const table = spec.table ?? RT_TABLE_MAIN;
  const m = Buffer.alloc(12);
  m.writeUInt8(AF.INET, 0);
  m.writeUInt8(dstLen, 1);
  m.writeUInt8(table < 256 ? table : 0, 4);
  m.writeUInt8(ROUTE_PROTOCOLS[spec.protocol ?? 'static'], 5);
  m.writeUInt8(spec.gateway ? RT_SCOPE.UNIVERSE : RT_SCOPE.LINK, 6);
  m.writeUInt8(RTN_UNICAST, 7);
  const attrs = [attr.u32(RTA_OIF, spec.ifindex), attr.u32(RTA_TABLE, table)];
  if (spec.destination !== undefined) attrs.push({ type: RTA_DST, value: ipv4Bytes(spec.destination) });
  if (spec.gateway) attrs.push({ type: RTA_GATEWAY, value: ipv4Bytes(spec.gateway) });
  if (spec.source) attrs.push({ type: RTA_PREFSRC, value: ipv4Bytes(spec.source) });
  if (spec.metric !== undefined) attrs.push(attr.u32(RTA_PRIORITY, spec.metric));
  return Buffer.concat([m, encodeAttrs(attrs)]);
}

/** Adds (or replaces) a route. */
export async function addIPv4Route(spec: IPv4RouteSpec, sock?: NetlinkSocket): Promise<void> {
  const payload = routePayload(spec);
  return withSocket(sock, async (s) => {
    await s.request(RTM.NEWROUTE, NLM_F.CREATE | NLM_F.REPLACE, payload);
  });
}

/** Removes a route; a missing one is not an error unless `missingOk` is false. */
export async function removeIPv4Route(
  spec: IPv4RouteSpec,
  sock?: NetlinkSocket,
  missingOk = true,
): Promise<void> {
  const payload = routePayload(spec);
  return withSocket(sock, async (s) => {
    try {
      await s.request(RTM.DELROUTE, 0, payload);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (!(missingOk && (code === 'ESRCH' || code === 'ENODEV'))) throw e;
    }
  });
}

import { SyscallError } from '../errors.js';
import { formatIp, parseIp, RT_SCOPE } from './address.js';
import { type Attr, attr, attrMap, encodeAttrs, type NetlinkSocket, NLM_F, type NlMsg } from './netlink.js';
import { RTM } from './rtnetlink.js';
import { AF } from './sockaddr.js';

/** Route attributes and values (linux/rtnetlink.h). */
export const RTA = {
  DST: 1,
  SRC: 2,
  IIF: 3,
  OIF: 4,
  GATEWAY: 5,
  PRIORITY: 6,
  PREFSRC: 7,
  TABLE: 15,
} as const;
export const RT_TABLE = { UNSPEC: 0, DEFAULT: 253, MAIN: 254, LOCAL: 255 } as const;
export const RTPROT = { UNSPEC: 0, KERNEL: 2, BOOT: 3, STATIC: 4, DHCP: 16 } as const;
export const RTN = {
  UNSPEC: 0,
  UNICAST: 1,
  LOCAL: 2,
  BROADCAST: 3,
  MULTICAST: 5,
  BLACKHOLE: 6,
  UNREACHABLE: 7,
} as const;

export interface RouteInfo {
  family: number;
  /** Destination network; "0.0.0.0" with prefixLength 0 is the default route. */
  destination: string;
  prefixLength: number;
  gateway?: string;
  oif?: number;
  preferredSource?: string;
  priority?: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
}

export interface RouteSpec {
  /** Omitted: the default route of `gateway`'s family (IPv4 unless gateway is IPv6). */
  destination?: string;
  prefixLength?: number;
  gateway?: string;
  oif?: number;
  preferredSource?: string;
  priority?: number;
  table?: number;
  protocol?: number;
  scope?: number;
}

function encodeRtmsg(r: {
  family: number;
  dstLen: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
}): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(r.family, 0);
  b.writeUInt8(r.dstLen, 1);
  b.writeUInt8(r.table < 256 ? r.table : RT_TABLE.UNSPEC, 4);
  b.writeUInt8(r.protocol, 5);
  b.writeUInt8(r.scope, 6);
  b.writeUInt8(r.type, 7);
  return b;
}

export function parseRoute(m: NlMsg): RouteInfo {
  const p = m.payload;
  const family = p.readUInt8(0);
  const attrs = attrMap(p.subarray(12));
  const zero = Buffer.alloc(family === AF.INET6 ? 16 : 4);
  const u32 = (t: number) => {
    const v = attrs.get(t);
    return v && v.length >= 4 ? v.readUInt32LE(0) : undefined;
  };
  const r: RouteInfo = {
    family,
    destination: formatIp(family, attrs.get(RTA.DST) ?? zero),
    prefixLength: p.readUInt8(1),
    table: u32(RTA.TABLE) ?? p.readUInt8(4),
    protocol: p.readUInt8(5),
    scope: p.readUInt8(6),
    type: p.readUInt8(7),
  };
  const gw = attrs.get(RTA.GATEWAY);
  if (gw) r.gateway = formatIp(family, gw);
  const oif = u32(RTA.OIF);
  if (oif !== undefined) r.oif = oif;
  const src = attrs.get(RTA.PREFSRC);
  if (src) r.preferredSource = formatIp(family, src);
  const prio = u32(RTA.PRIORITY);
  if (prio !== undefined) r.priority = prio;
  return r;
}

function routeMessage(r: RouteSpec, forDelete: boolean): { payload: Buffer; what: string } {
  const gw = r.gateway !== undefined ? parseIp(r.gateway) : undefined;
  const dst = parseIp(r.destination ?? (gw?.family === AF.INET6 ? '::' : '0.0.0.0'));
  const prefixLength =
    r.prefixLength ?? (r.destination === undefined ? 0 : dst.family === AF.INET6 ? 128 : 32);
  const table = r.table ?? RT_TABLE.MAIN;
  const attrs: Attr[] = [attr.u32(RTA.TABLE, table)];
  if (prefixLength > 0) attrs.push({ type: RTA.DST, value: dst.bytes });
  if (gw) attrs.push({ type: RTA.GATEWAY, value: gw.bytes });
  if (r.oif !== undefined) attrs.push(attr.u32(RTA.OIF, r.oif));
  if (r.preferredSource !== undefined)
    attrs.push({ type: RTA.PREFSRC, value: parseIp(r.preferredSource).bytes });
  if (r.priority !== undefined) attrs.push(attr.u32(RTA.PRIORITY, r.priority));
  const scope = r.scope ?? (gw || forDelete ? RT_SCOPE.UNIVERSE : RT_SCOPE.LINK);
  const payload = Buffer.concat([
    encodeRtmsg({
      family: dst.family,
      dstLen: prefixLength,
      table,
      protocol: forDelete ? RTPROT.UNSPEC : (r.protocol ?? RTPROT.STATIC),
      scope: forDelete ? RT_SCOPE.NOWHERE : scope,
      type: RTN.UNICAST,
    }),
    encodeAttrs(attrs),
  ]);
  const what = `${formatIp(dst.family, dst.bytes)}/${prefixLength}${gw ? ` via ${r.gateway}` : ''}${r.oif !== undefined ? ` dev ${r.oif}` : ''}`;
  return { payload, what };
}

/** Adds a route (EEXIST when an equal one is there; `replace` replaces it). */
export async function addRoute(
  sock: NetlinkSocket,
  r: RouteSpec,
  options: { replace?: boolean } = {},
): Promise<void> {
  const { payload, what } = routeMessage(r, false);
  try {
    await sock.request(RTM.NEWROUTE, NLM_F.CREATE | (options.replace ? NLM_F.REPLACE : NLM_F.EXCL), payload);
  } catch (e) {
    if (e instanceof SyscallError)
      throw new SyscallError(`add route ${what}`, e.errno, undefined, { cause: e });
    throw e;
  }
}

export async function deleteRoute(
  sock: NetlinkSocket,
  r: RouteSpec,
  options: { missingOk?: boolean } = {},
): Promise<boolean> {
  const { payload, what } = routeMessage(r, true);
  try {
    await sock.request(RTM.DELROUTE, 0, payload);
    return true;
  } catch (e) {
    if (e instanceof SyscallError) {
      if (options.missingOk && (e.code === 'ESRCH' || e.code === 'ENODEV')) return false;
      throw new SyscallError(`delete route ${what}`, e.errno, undefined, { cause: e });
    }
    throw e;
  }
}

/** Routes of the namespace: by default the main table of every family. */
export async function listRoutes(
  sock: NetlinkSocket,
  filter: { family?: number; table?: number | 'all'; oif?: number } = {},
): Promise<RouteInfo[]> {
  const msgs = await sock.dump(
    RTM.GETROUTE,
    encodeRtmsg({ family: filter.family ?? AF.UNSPEC, dstLen: 0, table: 0, protocol: 0, scope: 0, type: 0 }),
  );
  const table = filter.table ?? RT_TABLE.MAIN;
  return msgs
    .filter((m) => m.type === RTM.NEWROUTE)
    .map(parseRoute)
    .filter(
      (r) =>
        (filter.family === undefined || r.family === filter.family) &&
        (table === 'all' || r.table === table) &&
        (filter.oif === undefined || r.oif === filter.oif),
    );
}

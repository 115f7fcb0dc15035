import {
  BOOTREPLY,
  type DhcpMessage,
  messageType,
  Opt,
  optionIp,
  optionIps,
  optionText,
  optionU32,
} from './codec.js';
import { ipToInt, maskPrefix, prefixMask, sameSubnet } from './ipv4.js';

/**
 * What a client takes from an OFFER or ACK, checked before anything reaches
 * the kernel: an address that can be a host's, a contiguous netmask, a
 * router on the leased subnet, lease times in order.
 */

export interface ClientLease {
  address: string;
  prefixLength: number;
  serverId: string;
  router?: string;
  dns: string[];
  domain?: string;
  /** Seconds. */
  leaseTime: number;
  t1: number;
  t2: number;
}

/** The smallest lease we accept, so a hostile server cannot make us spin. */
export const MIN_LEASE_SECONDS = 2;

/** True for an address a host may take: not 0/8, loopback, link-local, multicast, class E or broadcast. */
export function usableHostAddress(a: number): boolean {
  const first = a >>> 24;
  if (first === 0 || first === 127 || first >= 224) return false;
  if (a >>> 16 === ((169 << 8) | 254)) return false;
  return true;
}

/** Why a reply is unusable, or the lease it carries. */
export function leaseFromReply(
  m: DhcpMessage,
  expect: { xid: number; chaddr: Buffer; type: number; serverId?: string },
): ClientLease | string {
  if (m.op !== BOOTREPLY) return 'not a reply';
  if (m.xid !== expect.xid) return 'another transaction';
  if (!m.chaddr.equals(expect.chaddr)) return 'another client';
  const type = messageType(m);
  if (type !== expect.type) return `message type ${type ?? 'none'}`;
  const serverId = optionIp(m, Opt.SERVER_ID);
  if (!serverId) return 'no server identifier';
  if (expect.serverId && serverId !== expect.serverId)
    return `from server ${serverId}, not ${expect.serverId}`;
  const address = ipToInt(m.yiaddr);
  if (!usableHostAddress(address)) return `unusable address ${m.yiaddr}`;
  const maskOpt = optionU32(m, Opt.SUBNET_MASK);
  let prefixLength: number | undefined;
  if (maskOpt === undefined) {
    // RFC 2131 leaves it optional; fall back to the classful mask as systemd does.
    const first = address >>> 24;
    prefixLength = first < 128 ? 8 : first < 192 ? 16 : 24;
  } else prefixLength = maskPrefix(maskOpt);
  if (prefixLength === undefined || prefixLength < 1 || prefixLength > 30) return 'bad subnet mask';
  const mask = prefixMask(prefixLength);
  const net = (address & mask) >>> 0;
  const bcast = (net | ~mask) >>> 0;
  if (address === net || address === bcast) return `address ${m.yiaddr} is not a host of its subnet`;
  const leaseTime = optionU32(m, Opt.LEASE_TIME);
  if (leaseTime === undefined) return 'no lease time';
  const lease = Math.max(MIN_LEASE_SECONDS, leaseTime);
  let t2 = optionU32(m, Opt.REBINDING_TIME) ?? Math.floor((lease * 7) / 8);
  let t1 = optionU32(m, Opt.RENEWAL_TIME) ?? Math.floor(lease / 2);
  if (t2 >= lease) t2 = Math.floor((lease * 7) / 8);
  if (t1 >= t2) t1 = Math.floor(t2 / 2);
  const out: ClientLease = {
    address: m.yiaddr,
    prefixLength,
    serverId,
    dns: (optionIps(m, Opt.DNS) ?? []).filter((d) => usableHostAddress(ipToInt(d)) || d.startsWith('127.')),
    leaseTime: lease,
    t1: Math.max(1, t1),
    t2: Math.max(1, t2),
  };
  const router = optionIps(m, Opt.ROUTER)?.[0];
  if (router && sameSubnet(ipToInt(router), address, prefixLength) && router !== m.yiaddr)
    out.router = router;
  const domain = optionText(m, Opt.DOMAIN_NAME);
  if (domain && /^[A-Za-z0-9.-]{1,253}$/.test(domain)) out.domain = domain;
  return out;
}

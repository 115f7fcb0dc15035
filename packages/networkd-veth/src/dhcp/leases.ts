import { InvalidArgumentError } from '@sd/sys';
import { siphash24 } from '../siphash.js';
import {
  BOOTREPLY,
  BOOTREQUEST,
  BROADCAST_FLAG,
  type DhcpMessage,
  type DhcpOutgoing,
  DhcpType,
  messageType,
  Opt,
  opt,
  optionIp,
  optionText,
} from './codec.js';
import { intToIp, ipToInt, prefixMask, sameSubnet } from './ipv4.js';

/**
 * The lease logic of one link of the DHCP server (RFC 2131 §4.3), with no
 * I/O: a request goes in, a reply with where to send it comes out. Every
 * address it hands out passes `assignable()`, the one check that keeps
 * leases inside the pool.
 */

export interface DhcpPoolConfig {
  /** The server's own address on the link (the host side, .1); also its server identifier. */
  serverAddress: string;
  prefixLength: number;
  /** First and last address handed out; default: every host address of the subnet but the server's. */
  poolStart?: string;
  poolEnd?: string;
  /** Announced router; default the server address, `false` for none. */
  router?: string | false;
  /** Announced DNS servers; default the server address. */
  dns?: readonly string[];
  /** Seconds (default 3600, as systemd-networkd's DefaultLeaseTimeSec=). */
  leaseTime?: number;
  /** How long an offered address stays reserved for its client (ms, default 60 s). */
  offerHoldMs?: number;
  /** How long a declined address is kept out of the pool (ms, default 10 min). */
  declineHoldMs?: number;
  /**
   * Answer a DISCOVER that carries Rapid Commit (RFC 4039) with an ACK at
   * once (default true, as networkd's [DHCPServer] RapidCommit=).
   */
  rapidCommit?: boolean;
}

export interface DhcpLease {
  address: string;
  /** Hardware address as aa:bb:cc:dd:ee:ff. */
  mac: string;
  /** Option 61 as hex, or "htype:mac" when the client sent none. */
  clientId: string;
  hostname?: string;
  /** ms since the epoch. */
  expiresAt: number;
}

export type ReplyDestination =
  | { kind: 'broadcast' }
  | { kind: 'unicast'; address: string }
  | { kind: 'link'; address: string; mac: Buffer }
  | { kind: 'relay'; address: string };

export type LeaseEvent =
  | { type: 'lease'; lease: DhcpLease; renewed: boolean }
  | { type: 'release'; lease: DhcpLease }
  | { type: 'decline'; address: string; clientId: string }
  | { type: 'nak'; clientId: string; reason: string };

export interface PoolResult {
  reply?: { message: DhcpOutgoing; to: ReplyDestination };
  events: LeaseEvent[];
  /** Why a request got no reply (for debug logs and tests). */
  ignored?: string;
}

interface Offer {
  address: number;
  until: number;
}

const macString = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
const HASH_KEY = Buffer.from('sd-dhcp-server-1');

export class LeasePool {
  readonly server: number;
  readonly prefixLength: number;
  readonly start: number;
  readonly end: number;
  private readonly mask: number;
  private readonly router: number | undefined;
  private readonly dns: number[];
  readonly leaseTime: number;
  private readonly offerHoldMs: number;
  private readonly declineHoldMs: number;
  private readonly rapidCommit: boolean;
  private readonly leases = new Map<string, DhcpLease>();
  private readonly byAddress = new Map<number, string>();
  private readonly offers = new Map<string, Offer>();
  private readonly declined = new Map<number, number>();

  constructor(cfg: DhcpPoolConfig) {
    this.server = ipToInt(cfg.serverAddress);
    this.prefixLength = cfg.prefixLength;
    this.mask = prefixMask(cfg.prefixLength);
    if (cfg.prefixLength > 30)
      throw new InvalidArgumentError(`DHCP server: a /${cfg.prefixLength} leaves no addresses to lease`);
    const net = (this.server & this.mask) >>> 0;
    const bcast = (net | ~this.mask) >>> 0;
    if (this.server === net || this.server === bcast)
      throw new InvalidArgumentError(`DHCP server: ${cfg.serverAddress} is not a host address of its subnet`);
    this.start = cfg.poolStart ? ipToInt(cfg.poolStart) : net + 1;
    this.end = cfg.poolEnd ? ipToInt(cfg.poolEnd) : bcast - 1;
    for (const [name, v] of [
      ['poolStart', this.start],
      ['poolEnd', this.end],
    ] as const)
      if (v <= net || v >= bcast)
        throw new InvalidArgumentError(
          `DHCP server: ${name} ${intToIp(v)} is outside ${intToIp(net)}/${cfg.prefixLength}`,
        );
    if (this.start > this.end)
      throw new InvalidArgumentError(`DHCP server: pool start ${intToIp(this.start)} is after its end`);
    this.router = cfg.router === false ? undefined : ipToInt(cfg.router ?? cfg.serverAddress);
    this.dns = (cfg.dns ?? [cfg.serverAddress]).map(ipToInt);
    this.leaseTime = cfg.leaseTime ?? 3600;
    if (!Number.isInteger(this.leaseTime) || this.leaseTime < 1 || this.leaseTime > 0xfffffffe)
      throw new InvalidArgumentError(
        `DHCP server: lease time ${cfg.leaseTime} is not a positive number of seconds`,
      );
    this.offerHoldMs = cfg.offerHoldMs ?? 60_000;
    this.declineHoldMs = cfg.declineHoldMs ?? 600_000;
    this.rapidCommit = cfg.rapidCommit ?? true;
  }

  /** The active leases (expired ones are dropped first). */
  list(now = Date.now()): DhcpLease[] {
    this.expire(now);
    return [...this.leases.values()].map((l) => ({ ...l }));
  }

  /** Drops leases that ran out; returns them. */
  expire(now = Date.now()): DhcpLease[] {
    const gone: DhcpLease[] = [];
    for (const [key, l] of this.leases)
      if (l.expiresAt <= now) {
        this.leases.delete(key);
        this.byAddress.delete(ipToInt(l.address));
        gone.push(l);
      }
    for (const [key, o] of this.offers) if (o.until <= now) this.offers.delete(key);
    for (const [a, until] of this.declined) if (until <= now) this.declined.delete(a);
    return gone;
  }

  inPool(a: number): boolean {
    return a >= this.start && a <= this.end && a !== this.server;
  }

  /** The one gate every address we hand out passes. */
  private assignable(a: number, key: string, now: number, overOffers = false): boolean {
    if (!this.inPool(a) || this.declined.has(a)) return false;
    const holder = this.byAddress.get(a);
    if (holder !== undefined && holder !== key) return false;
    if (!overOffers)
      for (const [k, o] of this.offers) if (k !== key && o.address === a && o.until > now) return false;
    return true;
  }

  private pick(key: string, requested: number | undefined, now: number): number | undefined {
    const held = this.leases.get(key);
    if (held && this.assignable(ipToInt(held.address), key, now)) return ipToInt(held.address);
    const offered = this.offers.get(key);
    if (offered && this.assignable(offered.address, key, now)) return offered.address;
    if (requested !== undefined && this.assignable(requested, key, now)) return requested;
    // Stable per client, as systemd does: a hash picks where to start looking.
    const size = this.end - this.start + 1;
    const first = Number(siphash24(Buffer.from(key), HASH_KEY) % BigInt(size));
    for (let i = 0; i < size; i++) {
      const a = this.start + ((first + i) % size);
      if (this.assignable(a, key, now)) return a;
    }
    // Only offers left: an offer is no commitment (RFC 2131 §4.3.1), so a flood of
    // DISCOVERs cannot starve the link; the oldest offer goes to the newcomer.
    let oldest: [string, Offer] | undefined;
    for (const e of this.offers)
      if (
        e[0] !== key &&
        this.assignable(e[1].address, key, now, true) &&
        (!oldest || e[1].until < oldest[1].until)
      )
        oldest = e;
    if (!oldest) return undefined;
    this.offers.delete(oldest[0]);
    return oldest[1].address;
  }

  private clientKey(m: DhcpMessage): string {
    const id = m.options.get(Opt.CLIENT_ID);
    if (id && id.length >= 2) return `id:${id.toString('hex')}`;
    return `${m.htype}:${macString(m.chaddr)}`;
  }

  private replyBase(m: DhcpMessage, type: number): DhcpOutgoing & { options: Array<[number, Buffer]> } {
    const options: Array<[number, Buffer]> = [
      opt.u8(Opt.MESSAGE_TYPE, type),
      opt.ip(Opt.SERVER_ID, [this.server]),
    ];
    return {
      op: BOOTREPLY,
      xid: m.xid,
      flags: m.flags & BROADCAST_FLAG,
      giaddr: m.giaddr,
      htype: m.htype,
      chaddr: m.chaddr,
      options,
    };
  }

  private withConfig(r: DhcpOutgoing & { options: Array<[number, Buffer]> }, lease: boolean): void {
    if (lease) {
      r.options.push(opt.u32(Opt.LEASE_TIME, this.leaseTime));
      r.options.push(opt.u32(Opt.RENEWAL_TIME, Math.floor(this.leaseTime / 2)));
      r.options.push(opt.u32(Opt.REBINDING_TIME, Math.floor((this.leaseTime * 7) / 8)));
    }
    r.options.push(opt.u32(Opt.SUBNET_MASK, this.mask));
    r.options.push(opt.u32(Opt.BROADCAST, (this.server | ~this.mask) >>> 0));
    if (this.router !== undefined) r.options.push(opt.ip(Opt.ROUTER, [this.router]));
    if (this.dns.length) r.options.push(opt.ip(Opt.DNS, this.dns));
  }

  private destination(m: DhcpMessage, yiaddr: number | undefined, nak: boolean): ReplyDestination {
    // RFC 2131 §4.1, the order in which a server picks where a reply goes.
    if (m.giaddr !== '0.0.0.0') return { kind: 'relay', address: m.giaddr };
    if (nak) return { kind: 'broadcast' };
    if (m.ciaddr !== '0.0.0.0') return { kind: 'unicast', address: m.ciaddr };
    if (m.flags & BROADCAST_FLAG || yiaddr === undefined || m.htype !== 1 || m.chaddr.length !== 6)
      return { kind: 'broadcast' };
    return { kind: 'link', address: intToIp(yiaddr), mac: m.chaddr };
  }

  private nak(m: DhcpMessage, key: string, reason: string): PoolResult {
    const r = this.replyBase(m, DhcpType.NAK);
    r.options.push(opt.bytes(Opt.MESSAGE, Buffer.from(reason)));
    const id = m.options.get(Opt.CLIENT_ID);
    if (id) r.options.push(opt.bytes(Opt.CLIENT_ID, id));
    return {
      reply: { message: r, to: this.destination(m, undefined, true) },
      events: [{ type: 'nak', clientId: key, reason }],
    };
  }

  private ack(m: DhcpMessage, key: string, a: number, now: number, rapid = false): PoolResult {
    const prev = this.leases.get(key);
    if (prev && ipToInt(prev.address) !== a) this.byAddress.delete(ipToInt(prev.address));
    const lease: DhcpLease = {
      address: intToIp(a),
      mac: macString(m.chaddr),
      clientId: key,
      expiresAt: now + this.leaseTime * 1000,
    };
    const hostname = optionText(m, Opt.HOSTNAME);
    if (hostname) lease.hostname = hostname.slice(0, 64);
    this.leases.set(key, lease);
    this.byAddress.set(a, key);
    this.offers.delete(key);
    const r = this.replyBase(m, DhcpType.ACK);
    r.yiaddr = intToIp(a);
    r.ciaddr = m.ciaddr;
    this.withConfig(r, true);
    const id = m.options.get(Opt.CLIENT_ID);
    if (id) r.options.push(opt.bytes(Opt.CLIENT_ID, id));
    if (rapid) r.options.push([Opt.RAPID_COMMIT, Buffer.alloc(0)]);
    return {
      reply: { message: r, to: this.destination(m, a, false) },
      events: [{ type: 'lease', lease: { ...lease }, renewed: prev?.address === lease.address }],
    };
  }

  /** Handles one request that arrived on this link. */
  handle(m: DhcpMessage, now = Date.now()): PoolResult {
    this.expire(now);
    if (m.op !== BOOTREQUEST) return { events: [], ignored: 'not a request' };
    const type = messageType(m);
    if (type === undefined) return { events: [], ignored: 'BOOTP request without DHCP message type' };
    if (m.hlen === 0 && !m.options.get(Opt.CLIENT_ID)) return { events: [], ignored: 'no client identity' };
    const key = this.clientKey(m);
    const serverId = optionIp(m, Opt.SERVER_ID);
    const requestedRaw = optionIp(m, Opt.REQUESTED_IP);
    const requested = requestedRaw === undefined ? undefined : ipToInt(requestedRaw);
    const ciaddr = ipToInt(m.ciaddr);

    switch (type) {
      case DhcpType.DISCOVER: {
        const a = this.pick(key, requested, now);
        if (a === undefined) return { events: [], ignored: 'pool exhausted' };
        if (this.rapidCommit && m.options.has(Opt.RAPID_COMMIT)) {
          // RFC 4039 §4: the lease is committed now, and the ACK says so.
          return this.ack(m, key, a, now, true);
        }
        this.offers.set(key, { address: a, until: now + this.offerHoldMs });
        const r = this.replyBase(m, DhcpType.OFFER);
        r.yiaddr = intToIp(a);
        this.withConfig(r, true);
        const id = m.options.get(Opt.CLIENT_ID);
        if (id) r.options.push(opt.bytes(Opt.CLIENT_ID, id));
        return { reply: { message: r, to: this.destination(m, a, false) }, events: [] };
      }
      case DhcpType.REQUEST: {
        if (serverId !== undefined) {
          // SELECTING: the client answers one server's offer.
          if (ipToInt(serverId) !== this.server) {
            this.offers.delete(key);
            return { events: [], ignored: `client chose server ${serverId}` };
          }
          if (requested === undefined) return this.nak(m, key, 'no requested address');
          if (!this.assignable(requested, key, now))
            return this.nak(m, key, 'requested address is not available');
          return this.ack(m, key, requested, now);
        }
        if (requested !== undefined && ciaddr === 0) {
          // INIT-REBOOT: the client checks an address it remembers.
          if (!sameSubnet(requested, this.server, this.prefixLength))
            return this.nak(m, key, 'requested address is on another network');
          if (!this.assignable(requested, key, now))
            return this.nak(m, key, 'requested address is not available');
          return this.ack(m, key, requested, now);
        }
        if (ciaddr !== 0) {
          // RENEWING (unicast) or REBINDING (broadcast).
          if (!sameSubnet(ciaddr, this.server, this.prefixLength))
            return this.nak(m, key, 'address is on another network');
          if (!this.assignable(ciaddr, key, now))
            return this.nak(m, key, 'address is not leased to this client');
          return this.ack(m, key, ciaddr, now);
        }
        return { events: [], ignored: 'REQUEST with neither server id, requested address nor ciaddr' };
      }
      case DhcpType.DECLINE: {
        if (serverId === undefined || ipToInt(serverId) !== this.server)
          return { events: [], ignored: 'DECLINE for another server' };
        if (requested === undefined || !this.inPool(requested))
          return { events: [], ignored: 'DECLINE of an address outside the pool' };
        const held = this.leases.get(key);
        const holder = this.byAddress.get(requested);
        // Only the client that holds (or was offered) the address may take it out of the pool.
        const offered = this.offers.get(key);
        if (holder !== key && offered?.address !== requested)
          return { events: [], ignored: 'DECLINE of an address not given to this client' };
        if (held && ipToInt(held.address) === requested) this.leases.delete(key);
        this.byAddress.delete(requested);
        this.offers.delete(key);
        this.declined.set(requested, now + this.declineHoldMs);
        return { events: [{ type: 'decline', address: intToIp(requested), clientId: key }] };
      }
      case DhcpType.RELEASE: {
        if (serverId !== undefined && ipToInt(serverId) !== this.server)
          return { events: [], ignored: 'RELEASE for another server' };
        const held = this.leases.get(key);
        if (!held || ipToInt(held.address) !== ciaddr)
          return { events: [], ignored: 'RELEASE of an address not leased to this client' };
        this.leases.delete(key);
        this.byAddress.delete(ciaddr);
        return { events: [{ type: 'release', lease: held }] };
      }
      case DhcpType.INFORM: {
        if (ciaddr === 0 || !sameSubnet(ciaddr, this.server, this.prefixLength))
          return { events: [], ignored: 'INFORM from outside the subnet' };
        const r = this.replyBase(m, DhcpType.ACK);
        r.ciaddr = m.ciaddr;
        this.withConfig(r, false);
        return { reply: { message: r, to: { kind: 'unicast', address: m.ciaddr } }, events: [] };
      }
      default:
        return { events: [], ignored: `message type ${type} is not for a server` };
    }
  }
}

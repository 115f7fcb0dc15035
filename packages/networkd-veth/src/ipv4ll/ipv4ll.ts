import { EventEmitter } from 'node:events';
import {
  addIPv4Address,
  closeInBackground,
  ETH_P,
  PACKET,
  parseSockaddr,
  poller,
  recvfrom,
  removeIPv4Address,
  sendto,
  sockaddrLl,
} from '@sd/sys';
import { intToIp, ipToInt } from '../dhcp/ipv4.js';
import { type NetnsLink, openNetnsLink } from '../dhcp/netns-link.js';
import { siphash24 } from '../siphash.js';
import { arpAnnounce, arpProbe, parseArp } from './arp.js';
import { openArpSocket } from './probe.js';

/**
 * IPv4 link-local addresses (RFC 3927): pick a 169.254.x.y from a sequence
 * seeded by the MAC (the same address after every restart, as systemd's
 * sd-ipv4ll does), probe it with ARP, announce it, then defend it; any
 * conflict while probing, or a second one within DEFEND_INTERVAL once
 * bound, moves on to the next candidate.
 */

export interface Ipv4llTimings {
  probeWait: number;
  probeMin: number;
  probeMax: number;
  probeNum: number;
  announceWait: number;
  announceNum: number;
  announceInterval: number;
  maxConflicts: number;
  rateLimitInterval: number;
  defendInterval: number;
}

/** RFC 3927 §9, in milliseconds. */
export const RFC3927_TIMINGS: Ipv4llTimings = {
  probeWait: 1000,
  probeMin: 1000,
  probeMax: 2000,
  probeNum: 3,
  announceWait: 2000,
  announceNum: 2,
  announceInterval: 2000,
  maxConflicts: 10,
  rateLimitInterval: 60_000,
  defendInterval: 10_000,
};

export interface Ipv4llOptions {
  ifname: string;
  /** Network namespace of the link (ns fd or pidfd); default the caller's. */
  netnsFd?: number;
  /** Seed for the address sequence; default the link's MAC. */
  seed?: Buffer;
  /** Overrides of RFC 3927's timings (tests). */
  timings?: Partial<Ipv4llTimings>;
  /** Set the address on the link (default true); false only reports it. */
  configure?: boolean;
}

export type Ipv4llState = 'probing' | 'announcing' | 'bound' | 'stopped';

export interface Ipv4llEvents {
  /** The address is configured (after probing, at the first announcement). */
  bound: [{ address: string }];
  /** Another host has the address; we move on to another. */
  conflict: [{ address: string; mac: string; state: Ipv4llState }];
  /** The address was given up (conflict while bound, or stop()). */
  lost: [{ address: string }];
  warning: [{ error: Error }];
}

const LL_FIRST = (169 << 24) | (254 << 16) | 0x0100;
const LL_COUNT = 0xfe00; // 169.254.1.0 .. 169.254.254.255
// Not Buffer.alloc(6, 0xff): its fill compiles at the start of every CLI this module is bundled in.
const BROADCAST_MAC = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
const KEY = Buffer.from('sd-ipv4ll-seed-1');

/** The `attempt`-th address (from 0) of the sequence `seed` gives: 169.254.1.0 to 169.254.254.255. */
export function ipv4llCandidate(seed: Buffer, attempt: number): string {
  const b = Buffer.alloc(seed.length + 4);
  seed.copy(b);
  b.writeUInt32BE(attempt >>> 0, seed.length);
  return intToIp((LL_FIRST + Number(siphash24(b, KEY) % BigInt(LL_COUNT))) >>> 0);
}

export class Ipv4ll extends EventEmitter<Ipv4llEvents> {
  state: Ipv4llState = 'probing';
  /** The candidate or bound address as a number. */
  private candidate = 0;
  private attempt = 0;
  private conflicts = 0;
  private probesSent = 0;
  private announcesSent = 0;
  private lastDefend = 0;
  private timer: NodeJS.Timeout | undefined;
  private configured = false;
  private readonly t: Ipv4llTimings;
  private readonly seed: Buffer;

  constructor(
    private readonly link: NetnsLink,
    private readonly fd: number,
    private readonly options: Ipv4llOptions,
  ) {
    super();
    this.t = { ...RFC3927_TIMINGS, ...options.timings };
    this.seed = options.seed ?? link.mac;
  }

  get address(): string | undefined {
    return this.state === 'announcing' || this.state === 'bound' ? intToIp(this.candidate) : undefined;
  }

  /** Begins probing (called by startIpv4ll). */
  begin(): void {
    poller().add(this.fd, () => this.readAll());
    this.pickNext();
    this.startProbing(this.random(this.t.probeWait));
  }

  private random(maxMs: number): number {
    return Math.floor(Math.random() * maxMs);
  }

  private pickNext(): void {
    this.candidate = ipToInt(ipv4llCandidate(this.seed, this.attempt++));
  }

  private schedule(ms: number, fn: () => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.state !== 'stopped') fn();
    }, ms);
  }

  private send(packet: Buffer): void {
    try {
      sendto(
        this.fd,
        packet,
        sockaddrLl({ protocol: ETH_P.ARP, ifindex: this.link.ifindex, addr: BROADCAST_MAC }),
      );
    } catch (e) {
      this.emit('warning', { error: e as Error });
    }
  }

  private startProbing(delay: number): void {
    this.state = 'probing';
    this.probesSent = 0;
    this.schedule(delay, () => this.probe());
  }

  private probe(): void {
    this.send(arpProbe(this.link.mac, this.candidate));
    this.probesSent++;
    if (this.probesSent < this.t.probeNum)
      this.schedule(this.t.probeMin + this.random(this.t.probeMax - this.t.probeMin), () => this.probe());
    else this.schedule(this.t.announceWait, () => void this.claim());
  }

  private async claim(): Promise<void> {
    this.state = 'announcing';
    this.announcesSent = 0;
    const address = intToIp(this.candidate);
    if (this.options.configure ?? true) {
      try {
        await addIPv4Address(
          { ifindex: this.link.ifindex, address, prefixLength: 16, scope: 'link' },
          this.link.netlink,
        );
        this.configured = true;
      } catch (e) {
        this.emit('warning', { error: e as Error });
      }
    }
    if (this.state !== 'announcing' || intToIp(this.candidate) !== address) return;
    this.emit('bound', { address });
    this.announce();
  }

  private announce(): void {
    this.send(arpAnnounce(this.link.mac, this.candidate));
    this.announcesSent++;
    if (this.announcesSent < this.t.announceNum)
      this.schedule(this.t.announceInterval, () => this.announce());
    else this.state = 'bound';
  }

  private readAll(): void {
    for (let i = 0; i < 64 && this.state !== 'stopped'; i++) {
      let r: ReturnType<typeof recvfrom>;
      try {
        r = recvfrom(this.fd, 256);
      } catch (e) {
        this.emit('warning', { error: e as Error });
        return;
      }
      if (!r) return;
      const from = parseSockaddr(r.from);
      if (from?.family === 'packet' && from.pkttype === PACKET.OUTGOING) continue;
      this.handleArp(r.data);
    }
  }

  /** Handles one received ARP payload; public for property tests. */
  handleArp(data: Buffer, now = Date.now()): void {
    if (this.state === 'stopped') return;
    let p: ReturnType<typeof parseArp>;
    try {
      p = parseArp(data);
    } catch {
      return;
    }
    if (p.senderMac.equals(this.link.mac)) return;
    const mac = [...p.senderMac].map((x) => x.toString(16).padStart(2, '0')).join(':');
    if (this.state === 'probing') {
      // RFC 3927 §2.2.1: someone uses it, or probes for it at the same time.
      const probeForIt = p.senderIp === 0 && p.targetIp === this.candidate;
      if (p.senderIp === this.candidate || probeForIt) this.conflict(mac);
      return;
    }
    if (p.senderIp !== this.candidate) return;
    // §2.5: defend once per DEFEND_INTERVAL, else give the address up.
    if (this.lastDefend && now - this.lastDefend < this.t.defendInterval) {
      void this.release().then(() => this.conflict(mac));
    } else {
      this.lastDefend = now;
      this.send(arpAnnounce(this.link.mac, this.candidate));
    }
  }

  private conflict(mac: string): void {
    if (this.state === 'stopped') return;
    this.emit('conflict', { address: intToIp(this.candidate), mac, state: this.state });
    this.conflicts++;
    this.pickNext();
    this.startProbing(
      this.conflicts >= this.t.maxConflicts ? this.t.rateLimitInterval : this.random(this.t.probeWait),
    );
  }

  private async release(): Promise<void> {
    const address = intToIp(this.candidate);
    const had = this.state === 'announcing' || this.state === 'bound';
    this.state = 'probing';
    this.lastDefend = 0;
    if (this.configured) {
      this.configured = false;
      await removeIPv4Address(
        { ifindex: this.link.ifindex, address, prefixLength: 16 },
        this.link.netlink,
      ).catch((e: Error) => this.emit('warning', { error: e }));
    }
    if (had) this.emit('lost', { address });
  }

  /** Gives the address up (removes it from the link) and closes the socket. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    if (this.timer) clearTimeout(this.timer);
    poller().remove(this.fd);
    // A packet socket's close waits for an RCU grace period: not on our thread.
    void closeInBackground(this.fd);
    await this.release();
    this.state = 'stopped';
    this.link.close();
  }
}

/** Starts IPv4 link-local addressing on `options.ifname`. */
export async function startIpv4ll(options: Ipv4llOptions): Promise<Ipv4ll> {
  const link = await openNetnsLink(options.ifname, options.netnsFd);
  let fd: number;
  try {
    fd = openArpSocket(link);
  } catch (e) {
    link.close();
    throw e;
  }
  const ll = new Ipv4ll(link, fd, options);
  ll.begin();
  return ll;
}

import { EventEmitter } from 'node:events';
import { getRandom } from '@sd/sys';
import { type Ipv4ll, startIpv4ll } from '../ipv4ll/ipv4ll.js';
import { probeAddressInUse } from '../ipv4ll/probe.js';
import { applyLease, foreignAddress, removeLease } from './client-apply.js';
import { type ClientLease, leaseFromReply } from './client-lease.js';
import { clientMessage } from './client-message.js';
import { ClientSockets } from './client-sockets.js';
import { rebindStepMs, renewStepMs, retransmitDelay } from './client-timing.js';
import type { DhcpClientEvents, DhcpClientOptions, DhcpClientState } from './client-types.js';

export type { DhcpClientEvents, DhcpClientOptions, DhcpClientState } from './client-types.js';

import {
  DHCP_CLIENT_PORT,
  DHCP_SERVER_PORT,
  type DhcpMessage,
  DhcpType,
  messageType,
  Opt,
  opt,
  optionIp,
  parseDhcp,
} from './codec.js';
import { parseUdp4 } from './frame.js';
import { ipToInt } from './ipv4.js';
import { type NetnsLink, openNetnsLink } from './netns-link.js';

/**
 * A DHCP client (RFC 2131 §4.4) for a container's host0, run by the
 * supervisor on the host: its sockets are opened inside the container's
 * network namespace and read through the host's poller, and the lease is
 * applied with rtnetlink on a socket made in that namespace.
 */

const REQUEST_TRIES = 4;
const LINK_DOWN_RETRY_MS = 50;

export class DhcpClient extends EventEmitter<DhcpClientEvents> {
  state: DhcpClientState = 'init';
  lease: ClientLease | undefined;
  private xid = 0;
  private offer: ClientLease | undefined;
  private tries = 0;
  private started = 0;
  private timer: NodeJS.Timeout | undefined;
  private leaseTimers: NodeJS.Timeout[] = [];
  private fallbackTimer: NodeJS.Timeout | undefined;
  private ll: Ipv4ll | undefined;
  private readonly clientId: Buffer;
  private readonly io: ClientSockets;

  constructor(
    private readonly link: NetnsLink,
    private readonly options: DhcpClientOptions,
  ) {
    super();
    this.clientId = options.clientId ?? Buffer.concat([Buffer.of(1), link.mac]);
    this.io = new ClientSockets(link, {
      packet: (b) => this.handlePacket(b),
      datagram: (b) => this.handleDhcp(b),
      error: (error) => this.emit('warning', { error }),
    });
  }

  /** The xid of the exchange in progress (tests and logs). */
  get transactionId(): number {
    return this.xid;
  }

  private setState(s: DhcpClientState): void {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s);
  }

  /** Starts from INIT (called by startDhcpClient). */
  begin(): void {
    if (this.options.guestClient) {
      this.setState('standby');
      return;
    }
    const fb = this.options.linkLocalFallbackMs;
    if (typeof fb === 'number') this.fallbackTimer = setTimeout(() => void this.startLinkLocal(), fb);
    this.init();
  }

  private schedule(ms: number, fn: () => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      fn();
    }, ms);
  }

  private backoff(): number {
    return retransmitDelay(this.tries, this.options.retransmitMs ?? 1000);
  }

  private message(type: number, extra: Array<[number, Buffer]>, ciaddr?: string): Buffer {
    const x = {
      xid: this.xid,
      started: this.started,
      clientId: this.clientId,
      mac: this.link.mac,
      hostname: this.options.hostname,
    };
    return clientMessage(x, type, extra, ciaddr);
  }

  private get metric(): number {
    return this.options.routeMetric ?? 1024;
  }

  private init(): void {
    this.io.closeUdp();
    this.io.openPacket();
    this.xid = getRandom(4).readUInt32BE(0);
    this.tries = 0;
    this.offer = undefined;
    this.started = Date.now();
    this.setState('selecting');
    this.discover();
  }

  private discover(): void {
    const rapid: Array<[number, Buffer]> =
      (this.options.rapidCommit ?? true) ? [[Opt.RAPID_COMMIT, Buffer.alloc(0)]] : [];
    const sent = this.io.sendRaw(this.message(DhcpType.DISCOVER, rapid));
    // A link that is not up yet (ENETDOWN) is tried again soon, not after the backoff:
    // the container's host0 may come up a moment after we start.
    this.schedule(sent ? this.backoff() : LINK_DOWN_RETRY_MS, () => {
      if (sent) this.tries++;
      this.discover();
    });
  }

  private request(): void {
    const o = this.offer;
    if (!o) return;
    this.io.sendRaw(
      this.message(DhcpType.REQUEST, [
        opt.ip(Opt.REQUESTED_IP, [ipToInt(o.address)]),
        opt.ip(Opt.SERVER_ID, [ipToInt(o.serverId)]),
      ]),
    );
    this.schedule(this.backoff(), () => {
      if (++this.tries >= REQUEST_TRIES) this.init();
      else this.request();
    });
  }

  private renewOrRebind(): void {
    const l = this.lease;
    if (!l) return;
    const payload = this.message(DhcpType.REQUEST, [], l.address);
    this.io.sendUdp(payload, this.state === 'renewing' ? l.serverId : '255.255.255.255');
  }

  /** One IPv4 packet from the packet socket; public for property tests. */
  handlePacket(data: Buffer): void {
    const udp = parseUdp4(data);
    if (typeof udp === 'string') return void this.emit('drop', { reason: udp });
    if (udp.dstPort !== DHCP_CLIENT_PORT || udp.srcPort !== DHCP_SERVER_PORT)
      return void this.emit('drop', { reason: 'not DHCP server to client' });
    this.handleDhcp(udp.payload);
  }

  /** One DHCP message; public for property tests. */
  handleDhcp(data: Buffer): void {
    let m: DhcpMessage;
    try {
      m = parseDhcp(data);
    } catch (e) {
      return void this.emit('drop', { reason: (e as Error).message });
    }
    const type = messageType(m);
    const base = { xid: this.xid, chaddr: this.link.mac };
    if (type === DhcpType.NAK) {
      if (m.xid !== this.xid || !m.chaddr.equals(this.link.mac)) return;
      const from = optionIp(m, Opt.SERVER_ID);
      const expected = this.serverId();
      if (this.state === 'selecting' || this.state === 'bound' || (expected && from && from !== expected))
        return;
      void this.lose('nak').then(() => this.init());
      return;
    }
    if (
      this.state === 'selecting' &&
      (this.options.rapidCommit ?? true) &&
      type === DhcpType.ACK &&
      m.options.has(Opt.RAPID_COMMIT)
    ) {
      // RFC 4039: the server committed the lease on our DISCOVER.
      const l = leaseFromReply(m, { ...base, type: DhcpType.ACK });
      if (typeof l === 'string') return void this.emit('drop', { reason: l });
      void this.bind(l);
      return;
    }
    if (this.state === 'selecting') {
      const l = leaseFromReply(m, { ...base, type: DhcpType.OFFER });
      if (typeof l === 'string') return void this.emit('drop', { reason: l });
      this.offer = l;
      this.tries = 0;
      this.setState('requesting');
      this.request();
      return;
    }
    if (this.state === 'requesting' || this.state === 'renewing' || this.state === 'rebinding') {
      const serverId = this.serverId();
      const l = leaseFromReply(m, { ...base, type: DhcpType.ACK, ...(serverId ? { serverId } : {}) });
      if (typeof l === 'string') return void this.emit('drop', { reason: l });
      if (this.state !== 'requesting' && l.address !== this.lease?.address)
        return void this.emit('drop', {
          reason: `ACK for ${l.address} while renewing ${this.lease?.address}`,
        });
      void this.bind(l);
    }
  }

  /** The server that must answer now: while rebinding any server may, otherwise only the one we talk to. */
  private serverId(): string | undefined {
    if (this.state === 'requesting') return this.offer?.serverId;
    return this.state === 'renewing' ? this.lease?.serverId : undefined;
  }

  private async bind(l: ClientLease): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const renewed = this.state === 'renewing' || this.state === 'rebinding';
    this.setState('bound');
    const prev = this.lease;
    this.lease = l;
    const check = this.options.checkAddress;
    if (check && !renewed) {
      const holder = await probeAddressInUse(this.link, ipToInt(l.address), check === true ? 200 : check);
      if (this.state !== 'bound' || this.lease !== l) return;
      if (holder) return this.decline(l, holder);
    }
    if (this.options.configure ?? true) {
      try {
        const foreign = renewed ? undefined : await foreignAddress(this.link, l, prev);
        if (foreign) {
          this.emit('yielded', { address: foreign });
          await this.standDown();
          return;
        }
        await applyLease(this.link, l, this.metric);
      } catch (e) {
        this.emit('warning', { error: e as Error });
      }
    }
    this.io.closePacket();
    try {
      this.io.openUdp();
    } catch (e) {
      // Renewal then cannot be heard; the lease still runs out and we start over.
      this.emit('warning', { error: e as Error });
    }
    this.armLeaseTimers(l);
    if (this.fallbackTimer) clearTimeout(this.fallbackTimer);
    this.fallbackTimer = undefined;
    if (this.ll) {
      const ll = this.ll;
      this.ll = undefined;
      await ll.stop();
    }
    this.emit(renewed ? 'renewed' : 'bound', l);
  }

  private decline(l: ClientLease, mac: string): void {
    this.lease = undefined;
    this.io.sendRaw(
      this.message(DhcpType.DECLINE, [
        opt.ip(Opt.REQUESTED_IP, [ipToInt(l.address)]),
        opt.ip(Opt.SERVER_ID, [ipToInt(l.serverId)]),
      ]),
    );
    this.setState('init');
    this.emit('declined', { address: l.address, mac });
    this.schedule(this.options.declineBackoffMs ?? 10_000, () => this.init());
  }

  private armLeaseTimers(l: ClientLease): void {
    for (const t of this.leaseTimers) clearTimeout(t);
    const at = (s: number, fn: () => void) => this.leaseTimers.push(setTimeout(fn, s * 1000));
    this.leaseTimers = [];
    at(l.t1, () => {
      this.setState('renewing');
      this.xid = getRandom(4).readUInt32BE(0);
      const step = () => {
        if (this.state !== 'renewing') return;
        this.renewOrRebind();
        this.schedule(renewStepMs(l), step);
      };
      step();
    });
    at(l.t2, () => {
      this.setState('rebinding');
      const step = () => {
        if (this.state !== 'rebinding') return;
        this.renewOrRebind();
        this.schedule(rebindStepMs(l), step);
      };
      step();
    });
    at(l.leaseTime, () => void this.lose('expired').then(() => this.init()));
  }

  private async lose(reason: 'expired' | 'nak' | 'stopped'): Promise<void> {
    for (const t of this.leaseTimers) clearTimeout(t);
    this.leaseTimers = [];
    const l = this.lease;
    this.lease = undefined;
    if (!l) return;
    if (this.options.configure ?? true) {
      try {
        await removeLease(this.link, l, this.metric);
      } catch (e) {
        this.emit('warning', { error: e as Error });
      }
    }
    this.emit('lost', { lease: l, reason });
  }

  private async startLinkLocal(): Promise<void> {
    this.fallbackTimer = undefined;
    if (this.lease || this.ll || this.state === 'stopped' || this.state === 'standby') return;
    try {
      const ll = await startIpv4ll({
        ...this.options.linkLocalOptions,
        ifname: this.link.ifname,
        ...(this.options.netnsFd === undefined ? {} : { netnsFd: this.options.netnsFd }),
      });
      if ((this.state as DhcpClientState) === 'stopped' || this.lease) return void (await ll.stop());
      this.ll = ll;
      ll.on('bound', (e) => this.emit('linkLocal', e));
      ll.on('warning', (e) => this.emit('warning', e));
    } catch (e) {
      this.emit('warning', { error: e as Error });
    }
  }

  /** The link-local fallback, when it runs. */
  get linkLocal(): Ipv4ll | undefined {
    return this.ll;
  }

  private halt(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.fallbackTimer) clearTimeout(this.fallbackTimer);
    for (const t of this.leaseTimers) clearTimeout(t);
    this.timer = this.fallbackTimer = undefined;
    this.leaseTimers = [];
    this.io.closePacket();
    this.io.closeUdp();
  }

  /** Stops without touching host0 (the guest's own client took over): no RELEASE, addresses left as they are. */
  async standDown(): Promise<void> {
    if (this.state === 'stopped') return;
    this.halt();
    this.lease = undefined;
    this.setState('standby');
    if (this.ll) await this.ll.stop();
    this.ll = undefined;
  }

  /** Sends RELEASE (unless disabled), removes address and route, closes the sockets. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    const l = this.lease;
    if (l && (this.options.sendRelease ?? true) && this.io.hasUdp) {
      this.xid = getRandom(4).readUInt32BE(0);
      this.io.sendUdp(
        this.message(DhcpType.RELEASE, [opt.ip(Opt.SERVER_ID, [ipToInt(l.serverId)])], l.address),
        l.serverId,
      );
    }
    this.halt();
    await this.lose('stopped');
    if (this.ll) await this.ll.stop();
    this.ll = undefined;
    this.setState('stopped');
    this.link.close();
  }
}

/** Starts a DHCP client on `options.ifname`; resolves once the first DISCOVER is out. */
export async function startDhcpClient(options: DhcpClientOptions): Promise<DhcpClient> {
  const link = await openNetnsLink(options.ifname, options.netnsFd);
  const client = new DhcpClient(link, options);
  try {
    client.begin();
  } catch (e) {
    await client.stop().catch(() => {});
    throw e;
  }
  return client;
}

import { EventEmitter } from 'node:events';
import {
  AF,
  bind,
  bindToDevice,
  closeInBackground,
  closeQuietly,
  ETH_P,
  InvalidArgumentError,
  ifNameToIndex,
  poller,
  recvfrom,
  SdError,
  SO,
  SOCK,
  SOL,
  sendto,
  setsockopt,
  sockaddrIn,
  sockaddrLl,
  socket,
  withNetworkNamespace,
} from '@sd/sys';
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, encodeDhcp, parseDhcp } from './codec.js';
import { buildUdp4 } from './frame.js';
import { ipToInt } from './ipv4.js';
import { type DhcpLease, type DhcpPoolConfig, LeasePool, type PoolResult } from './leases.js';

/**
 * One DHCP server for many links (systemd-networkd's DHCPServer= on every
 * ve-/vz- link), leases kept per link. Each link has a UDP socket on port 67
 * bound to its device (SO_BINDTODEVICE) for requests and for broadcast and
 * unicast replies, and a send-only packet socket for replies to a client
 * that has no address yet (unicast to its MAC, as RFC 2131 §4.1 asks and
 * systemd's sd-dhcp-server does). All reads go through the @sd/sys poller.
 */

export interface DhcpServerLinkOptions extends DhcpPoolConfig {
  ifname: string;
}

export interface DhcpServerOptions {
  /** Network namespace (ns fd or pidfd) the links live in; default the caller's. */
  netnsFd?: number;
  links?: readonly DhcpServerLinkOptions[];
  /** Clock in ms (tests). */
  now?: () => number;
}

export interface DhcpServerEvents {
  lease: [{ ifname: string; lease: DhcpLease; renewed: boolean }];
  release: [{ ifname: string; lease: DhcpLease }];
  expire: [{ ifname: string; lease: DhcpLease }];
  decline: [{ ifname: string; address: string; clientId: string }];
  nak: [{ ifname: string; clientId: string; reason: string }];
  /** A datagram that was not a usable request (malformed, ignored); for debugging. */
  drop: [{ ifname: string; reason: string }];
  /** A socket error while sending or receiving; the server keeps running. */
  warning: [{ ifname: string; error: Error }];
}

interface ServerLink {
  ifname: string;
  ifindex: number;
  pool: LeasePool;
  udp: number;
  raw: number;
}

export class DhcpServer extends EventEmitter<DhcpServerEvents> {
  private readonly links = new Map<string, ServerLink>();
  private readonly netnsFd: number | undefined;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;
  /** Counters of what came in, for tests and debugging. */
  readonly stats = { received: 0, malformed: 0, replies: 0 };

  constructor(options: DhcpServerOptions = {}) {
    super();
    this.netnsFd = options.netnsFd;
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => this.expireAll(), 5000);
    this.timer.unref();
  }

  /** Starts serving `cfg.ifname`; the link must exist and carry cfg.serverAddress. */
  addLink(cfg: DhcpServerLinkOptions): void {
    if (this.stopped) throw new SdError('ESHUTDOWN', 'DHCP server is stopped');
    if (this.links.has(cfg.ifname))
      throw new InvalidArgumentError(`DHCP server already serves ${cfg.ifname}`);
    const pool = new LeasePool(cfg);
    const open = () => {
      const ifindex = ifNameToIndex(cfg.ifname);
      const udp = socket(AF.INET, SOCK.DGRAM, 0);
      let raw = -1;
      try {
        setsockopt(udp, SOL.SOCKET, SO.REUSEADDR, 1);
        setsockopt(udp, SOL.SOCKET, SO.BROADCAST, 1);
        bindToDevice(udp, cfg.ifname);
        bind(udp, sockaddrIn('0.0.0.0', DHCP_SERVER_PORT));
        // Protocol 0: this packet socket receives nothing, it only sends.
        raw = socket(AF.PACKET, SOCK.DGRAM, 0);
      } catch (e) {
        closeQuietly(udp, raw < 0 ? undefined : raw);
        throw e;
      }
      return { ifindex, udp, raw };
    };
    const fds = this.netnsFd === undefined ? open() : withNetworkNamespace(this.netnsFd, open);
    const link: ServerLink = { ifname: cfg.ifname, pool, ...fds };
    this.links.set(cfg.ifname, link);
    poller().add(link.udp, () => this.readLink(link));
  }

  /** Stops serving a link and forgets its leases. */
  removeLink(ifname: string): void {
    const link = this.links.get(ifname);
    if (!link) return;
    this.links.delete(ifname);
    poller().remove(link.udp);
    closeQuietly(link.udp);
    // A packet socket's close waits for an RCU grace period: not on our thread.
    void closeInBackground(link.raw);
  }

  get linkNames(): string[] {
    return [...this.links.keys()];
  }

  /** Active leases of one link, or of all links keyed by link name. */
  leases(ifname: string): DhcpLease[] {
    const link = this.links.get(ifname);
    if (!link) throw new InvalidArgumentError(`DHCP server does not serve ${ifname}`);
    return link.pool.list(this.now());
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    for (const name of [...this.links.keys()]) this.removeLink(name);
  }

  private expireAll(): void {
    for (const link of this.links.values())
      for (const lease of link.pool.expire(this.now())) this.emit('expire', { ifname: link.ifname, lease });
  }

  private readLink(link: ServerLink): void {
    for (let i = 0; i < 64 && this.links.get(link.ifname) === link; i++) {
      let r: ReturnType<typeof recvfrom>;
      try {
        r = recvfrom(link.udp, 2048);
      } catch (e) {
        this.emit('warning', { ifname: link.ifname, error: e as Error });
        return;
      }
      if (!r) return;
      this.stats.received++;
      this.handleDatagram(link, r.data);
    }
  }

  /** Handles one request; public for property tests that feed hostile bytes without a socket. */
  handleDatagram(link: { ifname: string; pool: LeasePool } | string, data: Buffer): PoolResult | undefined {
    const l = typeof link === 'string' ? this.links.get(link) : this.links.get(link.ifname);
    if (!l) return undefined;
    let result: PoolResult;
    try {
      result = l.pool.handle(parseDhcp(data), this.now());
    } catch (e) {
      this.stats.malformed++;
      this.emit('drop', { ifname: l.ifname, reason: (e as Error).message });
      return undefined;
    }
    if (result.ignored) this.emit('drop', { ifname: l.ifname, reason: result.ignored });
    if (result.reply) this.send(l, result);
    for (const ev of result.events) {
      if (ev.type === 'lease') this.emit('lease', { ifname: l.ifname, lease: ev.lease, renewed: ev.renewed });
      else if (ev.type === 'release') this.emit('release', { ifname: l.ifname, lease: ev.lease });
      else if (ev.type === 'decline')
        this.emit('decline', { ifname: l.ifname, address: ev.address, clientId: ev.clientId });
      else this.emit('nak', { ifname: l.ifname, clientId: ev.clientId, reason: ev.reason });
    }
    return result;
  }

  private send(link: ServerLink, result: PoolResult): void {
    const reply = result.reply;
    if (!reply) return;
    const data = encodeDhcp(reply.message);
    const to = reply.to;
    try {
      if (to.kind === 'link') {
        const packet = buildUdp4({
          src: link.pool.server,
          dst: ipToInt(to.address),
          srcPort: DHCP_SERVER_PORT,
          dstPort: DHCP_CLIENT_PORT,
          payload: data,
        });
        sendto(link.raw, packet, sockaddrLl({ protocol: ETH_P.IP, ifindex: link.ifindex, addr: to.mac }));
      } else if (to.kind === 'broadcast') {
        sendto(link.udp, data, sockaddrIn('255.255.255.255', DHCP_CLIENT_PORT));
      } else if (to.kind === 'relay') {
        sendto(link.udp, data, sockaddrIn(to.address, DHCP_SERVER_PORT));
      } else {
        sendto(link.udp, data, sockaddrIn(to.address, DHCP_CLIENT_PORT));
      }
      this.stats.replies++;
    } catch (e) {
      this.emit('warning', { ifname: link.ifname, error: e as Error });
    }
  }
}

/** Starts a DHCP server for `options.links` (more can be added with addLink). */
export function startDhcpServer(options: DhcpServerOptions = {}): DhcpServer {
  const server = new DhcpServer(options);
  try {
    for (const l of options.links ?? []) server.addLink(l);
  } catch (e) {
    server.stop();
    throw e;
  }
  return server;
}

import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { DhcpLease } from '../dhcp/leases.js';
import { DhcpServer } from '../dhcp/server.js';
import type { ConfiguredLink } from '../link/configure.js';
import { type Claim, dhcpClaimName, tryClaim } from './claim.js';

/**
 * The DHCP server of container links, as systemd-networkd's shipped
 * 80-container-ve.network and 80-container-vz.network ask for it
 * (DHCPServer=yes with its defaults): the pool is the link's subnet but
 * the host's .1, the router and server identifier are the host's address,
 * DNS is what the host uses (EmitDNS=yes propagates the uplink's servers;
 * loopback stubs such as 127.0.0.53 mean nothing inside and are left
 * out), leases last an hour (DefaultLeaseTimeSec=).
 *
 * One DhcpServer for every link of the process, leases per link. A link
 * is served by whoever holds its claim (serve/claim.ts): sd-nspawn and the
 * daemon never both answer on one link. A link claimed by someone else
 * is tried again every `retryMs`, so the members of a zone take over its
 * server when the sd-nspawn that served it exits.
 */

export const DEFAULT_LEASE_TIME = 3600;

/** Name servers of the host's resolv.conf, without loopback ones (they are not reachable from a container). */
export function hostNameServers(path = '/etc/resolv.conf'): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(line);
    if (m && !m[1]!.startsWith('127.') && !out.includes(m[1]!)) out.push(m[1]!);
  }
  return out.slice(0, 3);
}

export interface LinkServersOptions {
  /** Network namespace of the links; default the caller's. */
  netnsFd?: number;
  /** DNS servers announced; default hostNameServers(). */
  dns?: readonly string[];
  leaseTime?: number;
  retryMs?: number;
}

export interface LinkServersEvents {
  lease: [{ ifname: string; lease: DhcpLease; renewed: boolean }];
  /** We now serve this link (at once, or after taking over its claim). */
  serving: [{ ifname: string }];
  warning: [{ ifname: string; error: Error }];
}

interface Wanted {
  link: ConfiguredLink;
  claim?: Claim;
}

export class LinkServers extends EventEmitter<LinkServersEvents> {
  private server: DhcpServer | undefined;
  private readonly links = new Map<string, Wanted>();
  private retry: NodeJS.Timeout | undefined;
  private readonly dns: readonly string[];

  constructor(private readonly options: LinkServersOptions = {}) {
    super();
    this.dns = options.dns ?? hostNameServers();
  }

  /** Serves `link` when its claim is free, now or later; true when we serve it now. */
  serve(link: ConfiguredLink): boolean {
    const had = this.links.get(link.name);
    if (had?.claim !== undefined) return true;
    const w: Wanted = { link };
    this.links.set(link.name, w);
    const ok = this.take(w);
    if (!ok) this.armRetry();
    return ok;
  }

  /** Whether this process answers DHCP on `ifname`. */
  serves(ifname: string): boolean {
    return this.links.get(ifname)?.claim !== undefined;
  }

  leases(ifname: string): DhcpLease[] {
    return this.serves(ifname) && this.server ? this.server.leases(ifname) : [];
  }

  /** Stops serving (and wanting) a link; its leases go with it. */
  unserve(ifname: string): void {
    const w = this.links.get(ifname);
    if (!w) return;
    this.links.delete(ifname);
    if (w.claim !== undefined) {
      this.server?.removeLink(ifname);
      w.claim.release();
    }
  }

  close(): void {
    if (this.retry) clearInterval(this.retry);
    this.retry = undefined;
    for (const name of [...this.links.keys()]) this.unserve(name);
    this.server?.stop();
    this.server = undefined;
  }

  private take(w: Wanted): boolean {
    const claim = tryClaim(dhcpClaimName(w.link.name), this.options.netnsFd);
    if (claim === undefined) return false;
    try {
      if (!this.server) {
        const s = new DhcpServer(this.options.netnsFd === undefined ? {} : { netnsFd: this.options.netnsFd });
        s.on('lease', (e) => this.emit('lease', e));
        s.on('warning', (e) => this.emit('warning', e));
        this.server = s;
      }
      this.server.addLink({
        ifname: w.link.name,
        serverAddress: w.link.hostAddress,
        prefixLength: w.link.prefixLength,
        dns: this.dns,
        leaseTime: this.options.leaseTime ?? DEFAULT_LEASE_TIME,
      });
    } catch (e) {
      claim.release();
      throw e;
    }
    w.claim = claim;
    this.emit('serving', { ifname: w.link.name });
    return true;
  }

  private armRetry(): void {
    if (this.retry) return;
    this.retry = setInterval(() => {
      let waiting = 0;
      for (const w of this.links.values()) {
        if (w.claim !== undefined) continue;
        try {
          if (!this.take(w)) waiting++;
        } catch (e) {
          // The link went meanwhile (ENODEV): forget it.
          this.links.delete(w.link.name);
          this.emit('warning', { ifname: w.link.name, error: e as Error });
        }
      }
      if (!waiting && this.retry) {
        clearInterval(this.retry);
        this.retry = undefined;
      }
    }, this.options.retryMs ?? 1000);
    this.retry.unref();
  }
}

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { type LinkInfo, LinkMonitor, listLinks, type NetlinkSocket, openRouteSocket, SdError } from '@sd/sys';
import { type ConfiguredLink, configureContainerLink, containerLinkKind } from '../link/configure.js';
import { NatTable, processGone } from '../nft/nat.js';
import { type Claim, DAEMON_CLAIM, sweepStaleClaims, tryClaim } from '../serve/claim.js';
import { LinkServers, type LinkServersOptions } from '../serve/servers.js';

/**
 * sd-networkd-veth's daemon: every ve-* veth and vz-* bridge of the
 * namespace, whoever made it, configured as systemd-networkd's shipped
 * 80-container-ve.network and 80-container-vz.network configure them
 * (pool address, up, masquerade, DHCPServer=yes) — at start for the links
 * already there, then as the link monitor reports new ones: a link's DHCP
 * socket is bound when the link appears, before it has carrier, so the
 * first DISCOVER is answered. Masquerade elements and leases of links
 * that went are removed.
 *
 * While it runs it holds the claim "daemon" of its network namespace
 * (serve/claim.ts): sd-nspawn then serves no DHCP of its own. A link sd-nspawn already serves keeps that server; the daemon takes
 * it over when sd-nspawn lets go (LinkServers retries the claim).
 */

/** One lock for every writer of our nftables table (sd-nspawn and this daemon). */
export const DEFAULT_NAT_LOCK = '/run/sd-networkd-veth/nat.lock';

export interface DaemonEvents {
  configured?: (link: ConfiguredLink) => void;
  /** A DHCP lease given on a link. */
  lease?: (ifname: string, address: string, mac: string) => void;
  error?: (link: string, error: Error) => void;
}

/** Whether networkd would match this link: Name=ve-* Driver=veth, or Name=vz-* Driver=bridge. */
export function matchesContainerNetwork(link: LinkInfo): boolean {
  const kind = containerLinkKind(link.name);
  return (kind === 've' && link.kind === 'veth') || (kind === 'vz' && link.kind === 'bridge');
}

/** The daemon's claim; a checker (sd-nspawn) holds it for an instant, so a few tries. */
function claimDaemon(): Claim | undefined {
  for (let i = 0; i < 50; i++) {
    const c = tryClaim(DAEMON_CLAIM);
    if (c) return c;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
  }
  return undefined;
}

export class NetworkdVeth {
  private readonly sock: NetlinkSocket;
  private readonly nat: NatTable;
  private monitor: LinkMonitor | undefined;
  private readonly busy = new Map<string, Promise<void>>();
  private readonly claim: Claim;
  /** The one DHCP server of every link this daemon configures. */
  readonly dhcp: LinkServers;

  constructor(
    private readonly events: DaemonEvents = {},
    options: { lockPath?: string; dhcp?: LinkServersOptions | false } = {},
  ) {
    const lockPath = options.lockPath ?? DEFAULT_NAT_LOCK;
    mkdirSync(dirname(lockPath), { recursive: true });
    const claim = claimDaemon();
    if (claim === undefined)
      throw new SdError('EADDRINUSE', 'another sd-networkd-veth runs in this network namespace');
    this.claim = claim;
    this.dhcp = new LinkServers(options.dhcp || {});
    this.dhcpEnabled = options.dhcp !== false;
    this.dhcp.on('lease', (e) => this.events.lease?.(e.ifname, e.lease.address, e.lease.mac));
    this.dhcp.on('warning', (e) => this.events.error?.(e.ifname, e.error));
    try {
      this.sock = openRouteSocket();
      this.nat = new NatTable({ lockPath });
    } catch (e) {
      claim.release();
      throw e;
    }
  }

  private readonly dhcpEnabled: boolean;

  /** Configures every matching link there is now; resolves with them. */
  async configureAll(): Promise<ConfiguredLink[]> {
    const links = await listLinks(this.sock);
    const names = new Set(links.map((l) => l.name));
    // Elements of links that are gone, and of dead sd-nspawn processes.
    this.nat.remove((o) => ('link' in o ? !names.has(o.link) : processGone(o)));
    sweepStaleClaims();
    const out: ConfiguredLink[] = [];
    for (const l of links.filter(matchesContainerNetwork)) {
      const c = await this.configure(l);
      if (c) out.push(c);
    }
    return out;
  }

  private async configure(link: LinkInfo): Promise<ConfiguredLink | undefined> {
    try {
      const c = await configureContainerLink(this.sock, link.index, { nat: this.nat });
      if (this.dhcpEnabled) this.dhcp.serve(c);
      this.events.configured?.(c);
      return c;
    } catch (e) {
      this.events.error?.(link.name, e as Error);
      return undefined;
    }
  }

  /** Watches for new links until close(). */
  watch(): void {
    this.monitor = new LinkMonitor(
      (e) => {
        if (e.type === 'link-new' && matchesContainerNetwork(e.link)) {
          // One configuration at a time per link; a burst of notifications is one pass.
          const name = e.link.name;
          if (this.busy.has(name)) return;
          const p = this.configure(e.link).then(() => {
            this.busy.delete(name);
          });
          this.busy.set(name, p);
        } else if (e.type === 'link-del' && containerLinkKind(e.link.name)) {
          this.dhcp.unserve(e.link.name);
          try {
            this.nat.remove((o) => 'link' in o && o.link === e.link.name);
          } catch (err) {
            this.events.error?.(e.link.name, err as Error);
          }
        }
      },
      { addresses: false },
    );
  }

  async close(): Promise<void> {
    this.monitor?.close();
    await Promise.all(this.busy.values());
    this.dhcp.close();
    this.sock.close();
    this.nat.close();
    this.claim.release();
  }
}

import type { Ipv4llOptions } from '../ipv4ll/ipv4ll.js';
import type { ClientLease } from './client-lease.js';

/** The DHCP client's options, states and events. */

export type DhcpClientState =
  | 'init'
  | 'selecting'
  | 'requesting'
  | 'bound'
  | 'renewing'
  | 'rebinding'
  | 'stopped'
  | 'standby';

export interface DhcpClientOptions {
  ifname: string;
  /** The container's network namespace (ns fd or pidfd); default the caller's. */
  netnsFd?: number;
  /** Option 61; default 0x01 + the MAC. */
  clientId?: Buffer;
  hostname?: string;
  /** Set address and default route (default true); false only reports the lease. */
  configure?: boolean;
  /** Send RELEASE on stop() (default true, as networkd's SendRelease=). */
  sendRelease?: boolean;
  /** First retransmission delay in ms, doubled up to 64 s (default 1000). */
  retransmitMs?: number;
  /** Route metric of the default route (default 1024, networkd's). */
  routeMetric?: number;
  /**
   * The guest runs its own DHCP client: ours does nothing (state 'standby').
   * The supervisor decides; nothing of ours touches host0 then.
   */
  guestClient?: boolean;
  /** Start IPv4 link-local after this many ms without a lease; false for never (default). */
  linkLocalFallbackMs?: number | false;
  linkLocalOptions?: Omit<Ipv4llOptions, 'ifname' | 'netnsFd'>;
  /**
   * Probe the offered address with ARP before taking it (RFC 2131 §4.4.1,
   * RFC 5227) and DECLINE it when another host answers; the number is how
   * long to wait for an answer (ms; `true` is 200).
   */
  checkAddress?: boolean | number;
  /** Wait after a DECLINE before starting over (ms, default 10 s as RFC 2131 §3.1 asks). */
  declineBackoffMs?: number;
  /**
   * Ask for Rapid Commit (RFC 4039) in DISCOVER: a server that does it
   * answers with an ACK at once (default true, as networkd's [DHCPv4]
   * RapidCommit=); OFFERs from others are taken as usual.
   */
  rapidCommit?: boolean;
}

export interface DhcpClientEvents {
  bound: [ClientLease];
  renewed: [ClientLease];
  /** The lease ran out or the server refused it; address and route are gone. */
  lost: [{ lease: ClientLease; reason: 'expired' | 'nak' | 'stopped' }];
  state: [DhcpClientState];
  /** IPv4 link-local fallback took an address. */
  linkLocal: [{ address: string }];
  /** The offered address was in use (another host answered an ARP probe); we sent DECLINE. */
  declined: [{ address: string; mac: string }];
  /** Another agent (the guest's own client) configured host0, so we stood down. */
  yielded: [{ address: string }];
  drop: [{ reason: string }];
  warning: [{ error: Error }];
}

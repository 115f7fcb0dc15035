import { NspawnError } from '../errors.js';
import type { Settings } from './settings.js';

/**
 * The network options of sd-nspawn (systemd-nspawn's --network-*, --port)
 * and their parsing, shared by the command line and .nspawn files.
 */

export interface PortSpec {
  protocol: 'tcp' | 'udp';
  hostPort: number;
  containerPort: number;
}

export interface NetworkSettings {
  /** -n, --network-veth, VirtualEthernet=: ve-NAME on the host, host0 inside. */
  networkVeth: boolean;
  /** --network-veth-extra=HOSTIF[:CONTAINERIF], VirtualEthernetExtra=. */
  networkVethExtra: string[];
  /** --network-bridge=BR, Bridge=: vb-NAME, a port of BR. */
  networkBridge?: string;
  /** --network-zone=ZONE, Zone=: vb-NAME, a port of vz-ZONE (made on demand). */
  networkZone?: string;
  /** --network-interface=IF, Interface=: moved in, given back on exit. */
  networkInterfaces: string[];
  /** --network-macvlan=IF, MACVLAN=. */
  networkMacvlan: string[];
  /** --network-ipvlan=IF, IPVLAN=: refused (no IPVLAN in this kernel). */
  networkIpvlan: string[];
  /** --network-namespace-path=: run in this existing network namespace. */
  networkNamespacePath?: string;
  /** -p, --port=, Port=. */
  ports: PortSpec[];
}

const IFNAME_RE = /^[^/:\s]{1,15}$/;

/** A kernel interface name given by the user, checked as systemd checks them. */
export function parseIfname(value: string | undefined, what: string): string {
  if (
    value === undefined ||
    !IFNAME_RE.test(value) ||
    value === '.' ||
    value === '..' ||
    Buffer.byteLength(value) > 15
  )
    throw new NspawnError(
      'EINVAL',
      `Invalid ${what}: ${JSON.stringify(value ?? '')} (not a valid network interface name)`,
    );
  return value;
}

/** HOSTIF[:CONTAINERIF] of --network-veth-extra. */
export function parseVethExtra(value: string | undefined): string {
  const [host, container, ...rest] = (value ?? '').split(':');
  if (rest.length) throw new NspawnError('EINVAL', `Invalid --network-veth-extra= value: ${value}`);
  parseIfname(host, '--network-veth-extra= host interface name');
  if (container !== undefined) parseIfname(container, '--network-veth-extra= container interface name');
  return value!;
}

function port(s: string, value: string): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535)
    throw new NspawnError('EINVAL', `Invalid port in --port=${value}: ${JSON.stringify(s)}`);
  return Number(s);
}

/** [tcp|udp:]HOSTPORT[:CONTAINERPORT] (systemd-nspawn's --port syntax). */
export function parsePortSpec(value: string | undefined): PortSpec {
  const v = value ?? '';
  let rest = v;
  let protocol: 'tcp' | 'udp' = 'tcp';
  const m = /^(tcp|udp):(.*)$/.exec(v);
  if (m) {
    protocol = m[1] as 'tcp' | 'udp';
    rest = m[2]!;
  }
  const parts = rest.split(':');
  if (parts.length > 2 || parts[0] === '')
    throw new NspawnError('EINVAL', `Invalid --port= value: ${JSON.stringify(v)}`);
  const hostPort = port(parts[0]!, v);
  const containerPort = parts[1] === undefined ? hostPort : port(parts[1], v);
  return { protocol, hostPort, containerPort };
}

export function parseZone(value: string | undefined): string {
  // vz- + the zone must be a valid interface name.
  if (!value || !/^[A-Za-z0-9_.-]+$/.test(value) || value.length > 12)
    throw new NspawnError(
      'EINVAL',
      `Invalid --network-zone= value: ${JSON.stringify(value ?? '')} (at most 12 of A-Z a-z 0-9 _ . -)`,
    );
  return value;
}

/** Whether the container gets a network namespace of its own (every --network-* but -namespace-path implies it). */
export function hasPrivateNetwork(s: Settings): boolean {
  return (
    s.privateNetwork ||
    s.networkVeth ||
    s.networkVethExtra.length > 0 ||
    s.networkBridge !== undefined ||
    s.networkZone !== undefined ||
    s.networkInterfaces.length > 0 ||
    s.networkMacvlan.length > 0 ||
    s.networkIpvlan.length > 0
  );
}

/** The network fields, for the explicit/untrusted bookkeeping of .nspawn files. */
export const NETWORK_FIELDS = [
  'networkVeth',
  'networkVethExtra',
  'networkBridge',
  'networkZone',
  'networkInterfaces',
  'networkMacvlan',
  'networkIpvlan',
  'ports',
] as const satisfies ReadonlyArray<keyof Settings>;

export function defaultNetworkSettings(): NetworkSettings {
  return {
    networkVeth: false,
    networkVethExtra: [],
    networkInterfaces: [],
    networkMacvlan: [],
    networkIpvlan: [],
    ports: [],
  };
}

/** Whether the settings ask for links of the container's own (veth, bridge, zone, moved or macvlan interfaces). */
export function needsLinks(s: Settings): boolean {
  return (
    s.networkVeth ||
    s.networkBridge !== undefined ||
    s.networkZone !== undefined ||
    s.networkVethExtra.length > 0 ||
    s.networkInterfaces.length > 0 ||
    s.networkMacvlan.length > 0
  );
}

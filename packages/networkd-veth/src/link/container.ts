import { addAddress, addRoute, type NetlinkSocket, setLink } from '@sd/sys';
import { nthAddress } from '../pool/ipv4.js';
import { siphash24 } from '../siphash.js';
import type { ConfiguredLink } from './configure.js';

/**
 * How the container's end of a link (host0) gets its address. The
 * supervisor calls configure() while the payload waits; what it returns
 * lives as long as the container (stop() when it goes). `dhcpAddressing`
 * (link/dhcp-addressing.ts) is the default; `staticAddressing` sets .2 by
 * hand and is kept for callers that want no DHCP at all.
 */
export interface ContainerAddressing {
  configure(target: AddressingTarget): Promise<AddressingHandle>;
}

export interface AddressingTarget {
  /** NETLINK_ROUTE socket in the container's network namespace. */
  sock: NetlinkSocket;
  /** The container's network namespace (an fd the caller holds until stop()). */
  netns: number;
  /** host0's index inside the container. */
  index: number;
  /** The host side, as configureContainerLink returned it. */
  host: ConfiguredLink;
  /**
   * host0's veth peer on the host (ve-NAME, or vb-NAME in a zone's bridge),
   * when the caller knows it: its carrier is waited for too (see
   * dhcp-addressing's carrier()).
   */
  peer?: { sock: NetlinkSocket; index: number };
  machine: string;
}

export interface AddressingHandle {
  /** host0's address when configure() resolved; undefined when it is not known yet. */
  address: ContainerAddress | undefined;
  /** Called whenever host0 gets a (new) address later on. */
  onAddress(listener: (a: ContainerAddress) => void): void;
  stop(): Promise<void>;
}

export interface ContainerAddress {
  address: string;
  prefixLength: number;
  gateway?: string;
}

const ZONE_KEY = Buffer.from('0b9f2c7d41e64a5c8d3e6f1a2b4c5d6e', 'hex');

/** The address a machine takes statically on a host link's subnet. */
export function staticContainerAddress(host: ConfiguredLink, machine: string): string {
  const size = 2 ** (32 - host.prefixLength);
  if (host.name.startsWith('ve-')) return nthAddress(host.subnet, 2);
  // A zone is shared: spread members over .2 .. .(size-2) by name.
  const n = 2 + Number(siphash24(Buffer.from(machine), ZONE_KEY) % BigInt(size - 3));
  return nthAddress(host.subnet, n);
}

export const staticAddressing: ContainerAddressing = {
  async configure({ sock, index, host, machine }) {
    const address = staticContainerAddress(host, machine);
    await setLink(sock, index, { up: true });
    await addAddress(sock, { index, address, prefixLength: host.prefixLength });
    await addRoute(sock, { gateway: host.hostAddress, oif: index });
    return {
      address: { address, prefixLength: host.prefixLength, gateway: host.hostAddress },
      onAddress: () => {},
      stop: async () => {},
    };
  },
};

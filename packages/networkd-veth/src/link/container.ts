import { addAddress, addRoute, type NetlinkSocket, setLink } from '@sd/sys';
import { nthAddress } from '../pool/ipv4.js';
import { siphash24 } from '../siphash.js';
import type { ConfiguredLink } from './configure.js';

/**
 * How the container's end of a link (host0) gets its address. Until the
 * DHCP client drives host0, the supervisor configures it itself, before the
 * payload runs, through a netlink socket in the container's namespace: the
 * address after the host's (.2 on a ve- /28; on a zone's /24 one picked by
 * the machine name), and a default route via the host. A DHCP client takes
 * this interface's place; nothing else has to change.
 */
export interface ContainerAddressing {
  configure(target: {
    /** NETLINK_ROUTE socket in the container's network namespace. */
    sock: NetlinkSocket;
    /** host0's index inside the container. */
    index: number;
    /** The host side, as configureContainerLink returned it. */
    host: ConfiguredLink;
    machine: string;
  }): Promise<ContainerAddress>;
}

export interface ContainerAddress {
  address: string;
  prefixLength: number;
  gateway: string;
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
    return { address, prefixLength: host.prefixLength, gateway: host.hostAddress };
  },
};

import {
  type AddressInfo,
  AF,
  addAddress,
  getLink,
  IFF,
  type LinkInfo,
  listAddresses,
  listRoutes,
  type NetlinkSocket,
  setLink,
} from '@sd/sys';
import { LOCKS, withLockFile } from '../lock.js';
import type { NatTable, Owner } from '../nft/nat.js';
import { contains, nthAddress, type Subnet, subnetOf } from '../pool/ipv4.js';
import { POOLS, pickSubnet } from '../pool/pool.js';
import { markStep } from '../trace/steps.js';
import { enableIPv4Forwarding } from './forward.js';

/**
 * The host side of a container link configured as systemd-networkd's
 * shipped 80-container-ve.network and 80-container-vz.network do:
 * `Address=0.0.0.0/28` (ve-) or `/24` (vz-) from the pool, IP masquerading
 * (and so forwarding), the link up. The DHCP server and link-local
 * addressing of those files are separate modules.
 */

export type ContainerLinkKind = 've' | 'vz';

export function containerLinkKind(name: string): ContainerLinkKind | undefined {
  if (name.startsWith('ve-')) return 've';
  if (name.startsWith('vz-')) return 'vz';
  return undefined;
}

export const POOL_PREFIX: Record<ContainerLinkKind, number> = { ve: 28, vz: 24 };

export interface ConfiguredLink {
  name: string;
  index: number;
  subnet: Subnet;
  /** The host's address on the link: the subnet's first. */
  hostAddress: string;
  prefixLength: number;
}

/** Every IPv4 subnet the namespace already uses: addresses on any link and routes (but not the default route). */
export async function usedSubnets(
  sock: NetlinkSocket,
  addresses?: readonly AddressInfo[],
): Promise<Subnet[]> {
  const addrs = addresses ?? (await listAddresses(sock, { family: AF.INET }));
  const routes = await listRoutes(sock, { family: AF.INET, table: 'all' });
  return [
    ...addrs.map((a) => subnetOf(a.address, a.prefixLength)),
    ...routes
      .filter((r) => r.prefixLength > 0 && r.type === 1)
      .map((r) => subnetOf(r.destination, r.prefixLength)),
  ];
}

export interface ConfigureOptions {
  /** Masquerade the subnet in this table (80-container-*.network: IPMasquerade=ipv4). */
  nat?: NatTable;
  /** The owner of the masquerade element; the link itself by default. */
  owner?: Owner;
  /** The lock held while a subnet is picked and taken (LOCKS.pool). */
  poolLock?: string;
  /** The pool seed: the machine (or zone) name keeps the subnet stable across restarts. */
  seed?: string;
}

/**
 * Gives a ve-/vz- link its pool address and brings it up; a link that
 * already has a pool address keeps it. Idempotent.
 */
export async function configureContainerLink(
  sock: NetlinkSocket,
  link: LinkInfo | number | string,
  options: ConfigureOptions = {},
): Promise<ConfiguredLink> {
  const info = typeof link === 'object' ? link : await getLink(sock, link);
  if (!info) throw new Error(`No such link: ${link}`);
  const kind = containerLinkKind(info.name);
  if (!kind) throw new Error(`${info.name} is not a container link (ve-* or vz-*)`);
  const prefixLength = POOL_PREFIX[kind];
  // Picked and taken under one lock, the link's own address looked up again inside it: two
  // links configured at once cannot get one subnet, nor one link (sd-nspawn and the daemon) two.
  const own = await withLockFile(options.poolLock ?? LOCKS.pool, async () => {
    // One listing for both: the link's own pool address, and the subnets in use.
    const addrs = await listAddresses(sock, { family: AF.INET });
    const found = addrs.find(
      (a) =>
        a.index === info.index &&
        a.prefixLength === prefixLength &&
        POOLS.some((p) => contains(p, a.address)),
    );
    if (found) return found;
    const s = pickSubnet(options.seed ?? info.name.slice(3), prefixLength, await usedSubnets(sock, addrs));
    const address = nthAddress(s, 1);
    await addAddress(sock, { index: info.index, address, prefixLength });
    return { address, prefixLength };
  });
  markStep('link: pool subnet picked, address added');
  const subnet = subnetOf(own.address, prefixLength);
  if (!(info.flags & IFF.UP)) await setLink(sock, info.index, { up: true });
  markStep('link: up');
  if (options.nat) {
    enableIPv4Forwarding();
    // `add element` of a subnet that is there already changes nothing (sd-nspawn and the daemon may both add it).
    options.nat.addMasquerade(subnet, options.owner ?? { link: info.name });
    markStep('link: masquerade in nftables');
  }
  return {
    name: info.name,
    index: info.index,
    subnet,
    hostAddress: own.address,
    prefixLength,
  };
}

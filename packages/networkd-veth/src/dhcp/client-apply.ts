import { addIPv4Address, addIPv4Route, listIPv4Addresses, removeIPv4Address, removeIPv4Route } from '@sd/sys';
import type { ClientLease } from './client-lease.js';
import type { NetnsLink } from './netns-link.js';

/** A lease on host0: its address (with the lease's lifetime) and its default route, tagged `dhcp`. */

export async function applyLease(link: NetnsLink, l: ClientLease, metric: number): Promise<void> {
  const ifindex = link.ifindex;
  await addIPv4Address(
    { ifindex, address: l.address, prefixLength: l.prefixLength, validLifetime: l.leaseTime },
    link.netlink,
  );
  if (l.router)
    await addIPv4Route(
      { ifindex, gateway: l.router, source: l.address, protocol: 'dhcp', metric },
      link.netlink,
    );
}

export async function removeLease(link: NetnsLink, l: ClientLease, metric: number): Promise<void> {
  const ifindex = link.ifindex;
  if (l.router) await removeIPv4Route({ ifindex, gateway: l.router, protocol: 'dhcp', metric }, link.netlink);
  await removeIPv4Address({ ifindex, address: l.address, prefixLength: l.prefixLength }, link.netlink);
}

/**
 * A global address on host0 that is neither this lease's nor the one before
 * it: someone else (the guest's own client) configures host0.
 */
export async function foreignAddress(
  link: NetnsLink,
  l: ClientLease,
  prev: ClientLease | undefined,
): Promise<string | undefined> {
  const found = (await listIPv4Addresses(link.ifindex, link.netlink)).find(
    (a) => a.global && a.address !== l.address && a.address !== prev?.address,
  );
  return found?.address;
}

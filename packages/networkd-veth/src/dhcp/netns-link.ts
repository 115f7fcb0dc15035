import {
  getLink,
  InvalidArgumentError,
  ifNameToIndex,
  NETLINK,
  NetlinkSocket,
  withNetworkNamespace,
} from '@sd/sys';

/**
 * One link seen from inside its network namespace: its index and MAC, an
 * rtnetlink socket opened there (so address and route changes land in that
 * namespace), and a way to open more sockets there. The main thread enters
 * the namespace only for the synchronous socket() calls (ARCHITECTURE.md §2); the
 * sockets stay in it for life and are driven by the host's poller.
 */
export interface NetnsLink {
  readonly ifname: string;
  readonly ifindex: number;
  readonly mac: Buffer;
  readonly netlink: NetlinkSocket;
  /** Runs `fn` (synchronous) inside the link's namespace. */
  inside<T>(fn: () => T): T;
  close(): void;
}

export async function openNetnsLink(ifname: string, netnsFd?: number): Promise<NetnsLink> {
  const inside = <T>(fn: () => T): T => (netnsFd === undefined ? fn() : withNetworkNamespace(netnsFd, fn));
  const { ifindex, netlink } = inside(() => {
    const ifindex = ifNameToIndex(ifname);
    return { ifindex, netlink: new NetlinkSocket(NETLINK.ROUTE) };
  });
  try {
    // The one link, not a dump of the namespace's.
    const link = await getLink(netlink, ifindex);
    if (!link) throw new InvalidArgumentError(`link ${ifname} disappeared`);
    const mac = Buffer.from(
      (link.address ?? '')
        .split(':')
        .filter(Boolean)
        .map((x) => Number.parseInt(x, 16)),
    );
    if (mac.length !== 6)
      throw new InvalidArgumentError(`link ${ifname} has no Ethernet address (${link.address ?? 'none'})`);
    return { ifname, ifindex, mac, netlink, inside, close: () => netlink.close() };
  } catch (e) {
    netlink.close();
    throw e;
  }
}

import { withNetworkNamespace } from '../proc/ns.js';
import { type AddressInfo, parseAddress } from './address.js';
import { NETLINK, NetlinkSocket } from './netlink.js';
import { type LinkInfo, parseLink, RTM, RTNLGRP } from './rtnetlink.js';

export type LinkEvent =
  | { type: 'link-new'; link: LinkInfo }
  | { type: 'link-del'; link: LinkInfo }
  | { type: 'addr-new'; address: AddressInfo }
  | { type: 'addr-del'; address: AddressInfo };

/**
 * Link and address changes of one network namespace as they happen:
 * RTNLGRP_LINK and the address groups on a NETLINK_ROUTE socket read
 * through the poller. Events are delivered on the main thread.
 */
export class LinkMonitor {
  readonly socket: NetlinkSocket;

  constructor(listener: (e: LinkEvent) => void, options: { netns?: number; addresses?: boolean } = {}) {
    const make = () => new NetlinkSocket(NETLINK.ROUTE);
    this.socket = options.netns === undefined ? make() : withNetworkNamespace(options.netns, make);
    try {
      this.socket.addMembership(RTNLGRP.LINK);
      if (options.addresses ?? true) {
        this.socket.addMembership(RTNLGRP.IPV4_IFADDR);
        this.socket.addMembership(RTNLGRP.IPV6_IFADDR);
      }
    } catch (e) {
      this.socket.close();
      throw e;
    }
    this.socket.onNotification((m) => {
      try {
        if (m.type === RTM.NEWLINK) listener({ type: 'link-new', link: parseLink(m) });
        else if (m.type === RTM.DELLINK) listener({ type: 'link-del', link: parseLink(m) });
        else if (m.type === RTM.NEWADDR) listener({ type: 'addr-new', address: parseAddress(m) });
        else if (m.type === RTM.DELADDR) listener({ type: 'addr-del', address: parseAddress(m) });
      } catch {
        // A message too short to parse is dropped: the kernel does not send those.
      }
    });
  }

  close(): void {
    this.socket.close();
  }
}

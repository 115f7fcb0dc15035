import { type ConfiguredLink, LinkServers, networkdVethRunning } from '@sd/networkd-veth';

/**
 * sd-nspawn's in-process DHCP server for its ve-/vz- links, used when no
 * sd-networkd-veth runs in the namespace (the daemon holds the claim
 * "daemon" of its namespace for its life; see networkd-veth's
 * serve/claim.ts). One server for every container of this process, made
 * with the first link and stopped with the last.
 */

let servers: LinkServers | undefined;
let users = 0;
const linkUsers = new Map<string, number>();

export interface ServedLink {
  /** Whether this process answers on the link now (false: the daemon, or another zone member, does). */
  serving: boolean;
  release(): void;
}

export function serveContainerLink(
  link: ConfiguredLink,
  logger?: { warn(message: string): void },
): ServedLink | undefined {
  if (networkdVethRunning()) return undefined;
  if (!servers) {
    const s = new LinkServers();
    s.on('warning', (e) => logger?.warn(`DHCP server on ${e.ifname}: ${e.error.message}`));
    servers = s;
  }
  users++;
  linkUsers.set(link.name, (linkUsers.get(link.name) ?? 0) + 1);
  const s = servers;
  let serving: boolean;
  try {
    serving = s.serve(link);
  } catch (e) {
    release();
    throw e;
  }
  let released = false;
  function release() {
    const n = (linkUsers.get(link.name) ?? 1) - 1;
    if (n > 0) linkUsers.set(link.name, n);
    else {
      linkUsers.delete(link.name);
      s.unserve(link.name);
    }
    users--;
    if (users === 0) {
      s.close();
      if (servers === s) servers = undefined;
    }
  }
  return {
    serving,
    release: () => {
      if (released) return;
      released = true;
      // A zone's bridge may serve other members of this process: given up with the last of them.
      release();
    },
  };
}

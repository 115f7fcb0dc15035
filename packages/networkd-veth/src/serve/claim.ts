import {
  AF,
  bind,
  closeQuietly,
  connect,
  SOCK,
  SyscallError,
  sockaddrUn,
  socket,
  withNetworkNamespace,
} from '@sd/sys';

/**
 * Who serves DHCP on a link, and whether sd-networkd-veth runs, told by
 * abstract AF_UNIX names. Abstract names belong to the network namespace
 * they were bound in and go with the socket, so a claim is per namespace
 * (a test's "host" namespace never sees the real host's daemon) and a
 * process killed with -9 drops its claims at once: nothing stale to sweep.
 *
 *   @sd-networkd-veth/daemon        bound by the daemon for its life
 *   @sd-networkd-veth/dhcp/IFNAME   bound by whoever serves DHCP on IFNAME
 */

const PREFIX = '@sd-networkd-veth/';

export const DAEMON_CLAIM = `${PREFIX}daemon`;

export function dhcpClaimName(ifname: string): string {
  return `${PREFIX}dhcp/${ifname}`;
}

function inNamespace<T>(netnsFd: number | undefined, fn: () => T): T {
  return netnsFd === undefined ? fn() : withNetworkNamespace(netnsFd, fn);
}

/** Binds `name`; the fd is the claim (close it to give it up), undefined when someone holds it. */
export function tryClaim(name: string, netnsFd?: number): number | undefined {
  return inNamespace(netnsFd, () => {
    const fd = socket(AF.UNIX, SOCK.DGRAM, 0);
    try {
      bind(fd, sockaddrUn(name));
      return fd;
    } catch (e) {
      closeQuietly(fd);
      if (e instanceof SyscallError && e.code === 'EADDRINUSE') return undefined;
      throw e;
    }
  });
}

/** Whether someone holds `name` (connect() to an unbound abstract name is refused). */
export function isClaimed(name: string, netnsFd?: number): boolean {
  return inNamespace(netnsFd, () => {
    const fd = socket(AF.UNIX, SOCK.DGRAM, 0);
    try {
      connect(fd, sockaddrUn(name));
      return true;
    } catch (e) {
      if (e instanceof SyscallError && (e.code === 'ECONNREFUSED' || e.code === 'ENOENT')) return false;
      throw e;
    } finally {
      closeQuietly(fd);
    }
  });
}

/** Whether sd-networkd-veth runs in this network namespace (then it serves DHCP on ve-/vz- links). */
export function networkdVethRunning(netnsFd?: number): boolean {
  return isClaimed(DAEMON_CLAIM, netnsFd);
}

import { statSync } from 'node:fs';
import { AF, attrMap, NETLINK, NetlinkSocket, RTM, SdError, withNetworkNamespace } from '@sd/sys';

/**
 * A machine's IP addresses, read from its own network namespace: the main
 * thread enters it with setns(pidfd, CLONE_NEWNET) just long enough to
 * create a NETLINK_ROUTE socket and goes back (network namespace changes are
 * per thread, ARCHITECTURE.md §2); the socket keeps talking to the namespace it
 * was created in. Like systemd, host-scope (loopback) and deprecated
 * addresses are left out.
 */

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
const IFA_F_DEPRECATED = 0x20;
const RT_SCOPE_HOST = 254;
const RT_SCOPE_NOWHERE = 255;

export interface MachineAddress {
  family: number;
  address: Buffer;
  ifindex: number;
}

/** Whether `pid` has a network namespace of its own (not ours). */
export function hasPrivateNetwork(pid: number): boolean {
  return statSync(`/proc/${pid}/ns/net`).ino !== statSync('/proc/self/ns/net').ino;
}

export function parseAddresses(payloads: Buffer[]): MachineAddress[] {
  const out: MachineAddress[] = [];
  for (const p of payloads) {
    if (p.length < 8) continue;
    const family = p.readUInt8(0);
    let flags = p.readUInt8(2);
    const scope = p.readUInt8(3);
    const ifindex = p.readUInt32LE(4);
    const attrs = attrMap(p.subarray(8));
    const f = attrs.get(IFA_FLAGS);
    if (f && f.length >= 4) flags = f.readUInt32LE(0);
    if (scope === RT_SCOPE_HOST || scope === RT_SCOPE_NOWHERE || flags & IFA_F_DEPRECATED) continue;
    const addr = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
    if (!addr || (family !== AF.INET && family !== AF.INET6)) continue;
    out.push({ family, address: Buffer.from(addr), ifindex });
  }
  // IPv4 first, then by interface, as systemd sorts them.
  return out.sort((a, b) => (a.family === b.family ? a.ifindex - b.ifindex : a.family === AF.INET ? -1 : 1));
}

/**
 * The addresses in the network namespace of the process behind `pidfd`
 * (a pidfd or an ns fd). `pid` is only used to refuse machines that share
 * the host's network.
 */
export async function machineAddresses(
  pid: number,
  pidfd: number,
  isHost = false,
): Promise<MachineAddress[]> {
  if (!isHost && !hasPrivateNetwork(pid))
    throw new SdError('ENONET', 'Machine does not use private networking');
  const sock = isHost
    ? new NetlinkSocket(NETLINK.ROUTE)
    : withNetworkNamespace(pidfd, () => new NetlinkSocket(NETLINK.ROUTE));
  try {
    const req = Buffer.alloc(8); // struct ifaddrmsg, AF_UNSPEC: every family
    const msgs = await sock.dump(RTM.GETADDR, req);
    return parseAddresses(msgs.filter((m) => m.type === RTM.NEWADDR).map((m) => m.payload));
  } finally {
    sock.close();
  }
}

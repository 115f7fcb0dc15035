import {
  AF,
  bind,
  closeInBackground,
  closeQuietly,
  ETH_P,
  PACKET,
  parseSockaddr,
  poller,
  recvfrom,
  SOCK,
  sendto,
  sockaddrLl,
  socket,
} from '@sd/sys';
import type { NetnsLink } from '../dhcp/netns-link.js';
import { arpProbe, parseArp } from './arp.js';

/** Opens an ARP packet socket on the link, inside its namespace. */
export function openArpSocket(link: NetnsLink): number {
  // Protocol 0 until bind(): rebinding a hooked packet socket waits for an RCU grace period.
  const fd = link.inside(() => socket(AF.PACKET, SOCK.DGRAM, 0));
  try {
    bind(fd, sockaddrLl({ protocol: ETH_P.ARP, ifindex: link.ifindex }));
  } catch (e) {
    closeQuietly(fd);
    throw e;
  }
  return fd;
}

/**
 * Address conflict detection (RFC 5227 §2.1.1) in its quick form: one ARP
 * probe for `address`, then `timeoutMs` for an answer from another host.
 * Resolves with that host's MAC, or undefined when nobody claims it.
 */
export function probeAddressInUse(
  link: NetnsLink,
  address: number,
  timeoutMs: number,
): Promise<string | undefined> {
  const fd = openArpSocket(link);
  return new Promise((resolve) => {
    let done = false;
    const finish = (mac?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      poller().remove(fd);
      void closeInBackground(fd);
      resolve(mac);
    };
    const timer = setTimeout(() => finish(), timeoutMs);
    poller().add(fd, () => {
      for (let i = 0; i < 64 && !done; i++) {
        let r: ReturnType<typeof recvfrom>;
        try {
          r = recvfrom(fd, 256);
        } catch {
          return finish();
        }
        if (!r) return;
        const from = parseSockaddr(r.from);
        if (from?.family === 'packet' && from.pkttype === PACKET.OUTGOING) continue;
        try {
          const p = parseArp(r.data);
          if (p.senderIp === address && !p.senderMac.equals(link.mac))
            return finish([...p.senderMac].map((x) => x.toString(16).padStart(2, '0')).join(':'));
        } catch {
          // not ARP we understand
        }
      }
    });
    try {
      sendto(
        fd,
        arpProbe(link.mac, address),
        sockaddrLl({ protocol: ETH_P.ARP, ifindex: link.ifindex, addr: Buffer.alloc(6, 0xff) }),
      );
    } catch {
      finish();
    }
  });
}

import { type AddressInfo, AF, getLink, IFF, LinkMonitor, type NetlinkSocket, setLink } from '@sd/sys';
import { type DhcpClient, startDhcpClient } from '../dhcp/client.js';
import type { ClientLease } from '../dhcp/client-lease.js';
import { type Ipv4ll, type Ipv4llTimings, startIpv4ll } from '../ipv4ll/ipv4ll.js';
import { markStep } from '../trace/steps.js';
import type { AddressingHandle, ContainerAddress, ContainerAddressing } from './container.js';

/**
 * host0 addressed by DHCP from the supervisor, or left to the guest.
 *
 * The rule (who owns host0):
 * - `guest: true` (sd-nspawn uses it for --boot): the guest's init owns
 *   networking, as with systemd-nspawn, where systemd-networkd's
 *   80-container-host0.network (or udhcpc, dhclient) configures host0 and
 *   nspawn never does. Ours does not touch host0; the host's server
 *   answers the guest's client.
 * - otherwise our client configures host0 before the payload runs (the
 *   payload starts online, as it did with the static address), waiting at
 *   most `waitMs`; if no lease came by then, the payload runs and the
 *   client keeps trying. Our client sends the client identifier a guest's
 *   client sends by default (0x01 + MAC; udhcpc and networkd with
 *   ClientIdentifier=mac do), so a client the payload runs itself is given
 *   the same lease and configures the same address: the two never fight.
 *   If a guest's client configures another address, ours stands down
 *   (DhcpClient's `yielded`).
 *
 * IPv4 link-local (RFC 3927) on both ends when no server answers: our
 * client falls back after `linkLocalFallbackMs`; the host end follows
 * whenever host0 shows a 169.254/16 address (ours or a guest client's,
 * networkd's LinkLocalAddressing=yes), so the two ends can reach each
 * other. Watched through a link monitor in the container's namespace.
 */

export interface DhcpAddressingOptions {
  guest?: boolean;
  /** How long configure() waits for a lease before the payload may run (ms, default 2000). */
  waitMs?: number;
  /** Our client's link-local fallback (ms without a lease, default 3000). */
  linkLocalFallbackMs?: number;
  /**
   * Our client's first retransmission (ms, doubled each time; default 100).
   * Its server is on this machine at the other end of a veth: a message
   * lost at link bring-up is sent again soon, not after the 1–3 s a client
   * on a real network waits. A server that comes up after host0 (networkd
   * configuring ve- as it appears: its first DISCOVER goes unheard) is
   * reached at the second one: 250 ms cost sd-nspawn -n ~150 ms there.
   */
  retransmitMs?: number;
  /** RFC 3927 timings for both ends (tests shorten nothing by default). */
  linkLocalTimings?: Partial<Ipv4llTimings>;
  logger?: { warn(message: string): void };
}

const isLinkLocal = (a: string) => a.startsWith('169.254.');

/**
 * Until host0 and its peer on the host both have carrier (IFF_RUNNING), at
 * most 500 ms: a DISCOVER sent before is dropped, and the client would only
 * try again after its first backoff (about a second). Both ends, because
 * the kernel's link watch makes them operational one after the other
 * (host0 first when it is the second end brought up), and a device sends
 * nothing (its queue discipline is a no-op) until its turn: with host0's
 * carrier alone, the server's OFFER on ve- was lost in about one start of
 * ten on a loaded machine.
 */
async function carrier(
  sock: NetlinkSocket,
  index: number,
  peer: { sock: NetlinkSocket; index: number } | undefined,
): Promise<void> {
  const deadline = Date.now() + 500;
  const running = async (s: NetlinkSocket, i: number) => {
    const l = await getLink(s, i);
    return !l || (l.flags & IFF.RUNNING) !== 0;
  };
  while (Date.now() < deadline) {
    if ((await running(sock, index)) && (!peer || (await running(peer.sock, peer.index)))) return;
    await new Promise((r) => setTimeout(r, 2));
  }
}

export function dhcpAddressing(options: DhcpAddressingOptions = {}): ContainerAddressing {
  return {
    async configure({ netns, index, host, machine, sock, peer }) {
      const listeners: Array<(a: ContainerAddress) => void> = [];
      let address: ContainerAddress | undefined;
      let hostLl: Ipv4ll | undefined;
      let hostLlStarting = false;
      let stopped = false;
      let client: DhcpClient | undefined;
      const warn = (m: string) => options.logger?.warn(m);
      const announce = (a: ContainerAddress) => {
        if (address?.address === a.address) return;
        address = a;
        for (const l of listeners) l(a);
      };
      const startHostLinkLocal = async () => {
        if (hostLl || hostLlStarting || stopped) return;
        hostLlStarting = true;
        try {
          const ll = await startIpv4ll({
            ifname: host.name,
            ...(options.linkLocalTimings ? { timings: options.linkLocalTimings } : {}),
          });
          if (stopped) await ll.stop();
          else hostLl = ll;
        } catch (e) {
          warn(`${host.name}: IPv4 link-local: ${(e as Error).message}`);
        } finally {
          hostLlStarting = false;
        }
      };
      const onAddr = (a: AddressInfo) => {
        if (a.family !== AF.INET || a.index !== index) return;
        if (isLinkLocal(a.address)) return void startHostLinkLocal();
        if (!options.guest) {
          const ours = client?.lease?.address;
          // Another address than our lease: a client the payload runs took host0 over; ours stands down.
          if (!client || client.state === 'standby' || ours === undefined || ours === a.address) return;
          warn(`host0: ${a.address} was configured by the guest; our DHCP client stands down`);
          void client.standDown();
        }
        // The guest's own client's address is the container's: port forwards follow it.
        announce({ address: a.address, prefixLength: a.prefixLength });
      };
      const monitor = new LinkMonitor((e) => e.type === 'addr-new' && onAddr(e.address), { netns });
      const handle: AddressingHandle = {
        get address() {
          return address;
        },
        onAddress: (l) => listeners.push(l),
        stop: async () => {
          stopped = true;
          monitor.close();
          try {
            await client?.stop();
          } catch (e) {
            warn(`host0: DHCP client: ${(e as Error).message}`);
          }
          await hostLl?.stop();
        },
      };
      if (options.guest) return handle;
      try {
        await setLink(sock, index, { up: true });
        markStep('host0: up');
        await carrier(sock, index, peer);
        markStep('host0: carrier');
        const lease = new Promise<ClientLease | undefined>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), options.waitMs ?? 2000);
          const done = (l: ClientLease) => {
            clearTimeout(timer);
            resolve(l);
          };
          void startDhcpClient({
            ifname: 'host0',
            netnsFd: netns,
            hostname: machine,
            retransmitMs: options.retransmitMs ?? 100,
            linkLocalFallbackMs: options.linkLocalFallbackMs ?? 3000,
            ...(options.linkLocalTimings ? { linkLocalOptions: { timings: options.linkLocalTimings } } : {}),
          }).then(
            (c) => {
              markStep('host0: DHCP client started, DISCOVER sent');
              c.on('state', (st) => {
                if (st === 'requesting') markStep('host0: OFFER received, REQUEST sent');
                else if (st === 'bound') markStep('host0: ACK received');
              });
              client = c;
              if (stopped) return void c.stop();
              const fromLease = (l: ClientLease) =>
                announce({
                  address: l.address,
                  prefixLength: l.prefixLength,
                  ...(l.router ? { gateway: l.router } : {}),
                });
              c.on('bound', (l) => {
                markStep('host0: lease configured (address, route)');
                fromLease(l);
                done(l);
              });
              c.on('yielded', (e) =>
                warn(`host0: the guest configured ${e.address}; our DHCP client stands down`),
              );
              c.on('warning', (e) => warn(`host0: DHCP client: ${e.error.message}`));
            },
            (e) => {
              warn(`host0: DHCP client: ${(e as Error).message}`);
              clearTimeout(timer);
              resolve(undefined);
            },
          );
        });
        await lease;
      } catch (e) {
        await handle.stop();
        throw e;
      }
      return handle;
    },
  };
}

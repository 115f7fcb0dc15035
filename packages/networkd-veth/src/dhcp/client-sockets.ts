import {
  AF,
  attachSocketFilter,
  BPF,
  bind,
  bindToDevice,
  bpfJump,
  bpfStmt,
  closeInBackground,
  closeQuietly,
  ETH_P,
  poller,
  recvfrom,
  SO,
  SOCK,
  SOL,
  sendto,
  setsockopt,
  sockaddrIn,
  sockaddrLl,
  socket,
} from '@sd/sys';
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT } from './codec.js';
import { buildUdp4 } from './frame.js';
import type { NetnsLink } from './netns-link.js';

/**
 * The DHCP client's two sockets, both opened inside the link's namespace:
 * a packet socket while it has no address (it must send from 0.0.0.0 and
 * hear replies unicast to an address it does not have yet), and a UDP
 * socket on port 68 bound to the device once bound (renew, rebind, release).
 */

// Accepts IPv4 UDP to port 68 that is not a fragment; the packet socket wakes us for nothing else.
const DHCP_CLIENT_FILTER = [
  bpfStmt(BPF.LD | BPF.B | BPF.ABS, 9),
  bpfJump(BPF.JMP | BPF.JEQ | BPF.K, 17, 0, 6),
  bpfStmt(BPF.LD | BPF.H | BPF.ABS, 6),
  bpfJump(BPF.JMP | BPF.JSET | BPF.K, 0x1fff, 4, 0),
  bpfStmt(BPF.LDX | BPF.B | 0xa0 /* BPF_MSH */, 0),
  bpfStmt(BPF.LD | BPF.H | BPF.IND, 2),
  bpfJump(BPF.JMP | BPF.JEQ | BPF.K, DHCP_CLIENT_PORT, 0, 1),
  bpfStmt(BPF.RET | BPF.K, 0xffff),
  bpfStmt(BPF.RET | BPF.K, 0),
];

export interface ClientSocketHandlers {
  /** An IPv4 packet from the packet socket. */
  packet(data: Buffer): void;
  /** A UDP payload from the port-68 socket. */
  datagram(data: Buffer): void;
  error(e: Error): void;
}

export class ClientSockets {
  private packetFd = -1;
  private udpFd = -1;

  constructor(
    private readonly link: NetnsLink,
    private readonly on: ClientSocketHandlers,
  ) {}

  get hasUdp(): boolean {
    return this.udpFd >= 0;
  }

  openPacket(): void {
    if (this.packetFd >= 0) return;
    // Protocol 0 at first, the protocol with bind(): a socket made with one is hooked to every
    // device at once, and rebinding it waits for an RCU grace period (~10 ms); so it also hears
    // nothing before its filter is on.
    const fd = this.link.inside(() => socket(AF.PACKET, SOCK.DGRAM, 0));
    try {
      attachSocketFilter(fd, DHCP_CLIENT_FILTER);
      bind(fd, sockaddrLl({ protocol: ETH_P.IP, ifindex: this.link.ifindex }));
    } catch (e) {
      closeQuietly(fd);
      throw e;
    }
    this.packetFd = fd;
    poller().add(fd, () => this.drain(fd, () => this.packetFd === fd, this.on.packet));
  }

  closePacket(): void {
    if (this.packetFd < 0) return;
    poller().remove(this.packetFd);
    // A packet socket's close waits for an RCU grace period: not on our thread.
    void closeInBackground(this.packetFd);
    this.packetFd = -1;
  }

  openUdp(): void {
    if (this.udpFd >= 0) return;
    const fd = this.link.inside(() => socket(AF.INET, SOCK.DGRAM, 0));
    try {
      setsockopt(fd, SOL.SOCKET, SO.REUSEADDR, 1);
      setsockopt(fd, SOL.SOCKET, SO.BROADCAST, 1);
      bindToDevice(fd, this.link.ifname);
      bind(fd, sockaddrIn('0.0.0.0', DHCP_CLIENT_PORT));
    } catch (e) {
      closeQuietly(fd);
      throw e;
    }
    this.udpFd = fd;
    poller().add(fd, () => this.drain(fd, () => this.udpFd === fd, this.on.datagram));
  }

  closeUdp(): void {
    if (this.udpFd < 0) return;
    poller().remove(this.udpFd);
    closeQuietly(this.udpFd);
    this.udpFd = -1;
  }

  close(): void {
    this.closePacket();
    this.closeUdp();
  }

  /** Broadcast from 0.0.0.0 through the packet socket (no address yet); false when it could not be sent. */
  sendRaw(payload: Buffer): boolean {
    const packet = buildUdp4({
      src: 0,
      dst: 0xffffffff,
      srcPort: DHCP_CLIENT_PORT,
      dstPort: DHCP_SERVER_PORT,
      payload,
    });
    try {
      sendto(
        this.packetFd,
        packet,
        sockaddrLl({ protocol: ETH_P.IP, ifindex: this.link.ifindex, addr: Buffer.alloc(6, 0xff) }),
      );
      return true;
    } catch (e) {
      this.on.error(e as Error);
      return false;
    }
  }

  /** To a server (unicast) or 255.255.255.255 from the port-68 socket. */
  sendUdp(payload: Buffer, to: string): void {
    try {
      sendto(this.udpFd, payload, sockaddrIn(to, DHCP_SERVER_PORT));
    } catch (e) {
      this.on.error(e as Error);
    }
  }

  private drain(fd: number, current: () => boolean, handle: (b: Buffer) => void): void {
    for (let i = 0; i < 64 && current(); i++) {
      let r: ReturnType<typeof recvfrom>;
      try {
        r = recvfrom(fd, 2048);
      } catch (e) {
        this.on.error(e as Error);
        return;
      }
      if (!r) return;
      handle(r.data);
    }
  }
}

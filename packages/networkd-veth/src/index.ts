export type { DhcpClientEvents, DhcpClientOptions, DhcpClientState } from './dhcp/client.js';
export { DhcpClient, startDhcpClient } from './dhcp/client.js';
export type { ClientLease } from './dhcp/client-lease.js';
export type { DhcpMessage, DhcpOutgoing } from './dhcp/codec.js';
export { DhcpParseError, DhcpType, encodeDhcp, Opt as DhcpOption, parseDhcp } from './dhcp/codec.js';
export type { DhcpLease, DhcpPoolConfig, LeaseEvent } from './dhcp/leases.js';
export { LeasePool } from './dhcp/leases.js';
export type { DhcpServerEvents, DhcpServerLinkOptions, DhcpServerOptions } from './dhcp/server.js';
export { DhcpServer, startDhcpServer } from './dhcp/server.js';
export type { ShortenedName, VethNameOptions } from './ifname.js';
export {
  ALTIFNAMSIZ,
  CONTAINER_VETH_NAME,
  IFNAMSIZ,
  isValidIfname,
  shortenIfname,
  vethHostName,
} from './ifname.js';
export type { ArpPacket } from './ipv4ll/arp.js';
export { ArpParseError, encodeArp, parseArp } from './ipv4ll/arp.js';
export type { Ipv4llEvents, Ipv4llOptions, Ipv4llState, Ipv4llTimings } from './ipv4ll/ipv4ll.js';
export { Ipv4ll, ipv4llCandidate, RFC3927_TIMINGS, startIpv4ll } from './ipv4ll/ipv4ll.js';
export { siphash24 } from './siphash.js';

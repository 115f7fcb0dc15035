export type { DaemonEvents } from './daemon/daemon.js';
export { DEFAULT_NAT_LOCK, matchesContainerNetwork, NetworkdVeth } from './daemon/daemon.js';
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
export type { ConfiguredLink, ConfigureOptions, ContainerLinkKind } from './link/configure.js';
export {
  configureContainerLink,
  containerLinkKind,
  POOL_PREFIX,
  usedSubnets,
} from './link/configure.js';
export type {
  AddressingHandle,
  AddressingTarget,
  ContainerAddress,
  ContainerAddressing,
} from './link/container.js';
export { staticAddressing, staticContainerAddress } from './link/container.js';
export type { DhcpAddressingOptions } from './link/dhcp-addressing.js';
export { dhcpAddressing } from './link/dhcp-addressing.js';
export { enableIPv4Forwarding } from './link/forward.js';
export { LOCKS, withLockFile } from './lock.js';
export type { MacKey } from './mac.js';
export { generateMac, hostMachineIdBytes, MAC_KEYS } from './mac.js';
export { Nft, NftError } from './nft/libnftables.js';
export type { Owner, PortForward } from './nft/nat.js';
export {
  NAT_TABLE,
  NatTable,
  ownerComment,
  parseOwnerComment,
  processGone,
  processStartTime,
  selfOwner,
} from './nft/nat.js';
export type { Subnet } from './pool/ipv4.js';
export {
  contains,
  formatIPv4,
  formatSubnet,
  nthAddress,
  overlaps,
  parseIPv4,
  parseSubnet,
  subnetOf,
} from './pool/ipv4.js';
export { POOLS, pickSubnet } from './pool/pool.js';
export type { Claim } from './serve/claim.js';
export {
  CLAIM_DIR,
  DAEMON_CLAIM,
  dhcpClaimName,
  heldClaims,
  isClaimed,
  networkdVethRunning,
  sweepStaleClaims,
  tryClaim,
} from './serve/claim.js';
export type { LinkServersEvents, LinkServersOptions } from './serve/servers.js';
export { DEFAULT_LEASE_TIME, hostNameServers, LinkServers } from './serve/servers.js';
export { siphash24 } from './siphash.js';
export type { StepListener } from './trace/steps.js';
export { markStep, onNetworkStep } from './trace/steps.js';

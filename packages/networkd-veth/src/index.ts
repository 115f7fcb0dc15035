export type { DaemonEvents } from './daemon/daemon.js';
export { DEFAULT_NAT_LOCK, matchesContainerNetwork, NetworkdVeth } from './daemon/daemon.js';
export type { ShortenedName, VethNameOptions } from './ifname.js';
export {
  ALTIFNAMSIZ,
  CONTAINER_VETH_NAME,
  IFNAMSIZ,
  isValidIfname,
  shortenIfname,
  vethHostName,
} from './ifname.js';
export type { ConfiguredLink, ConfigureOptions, ContainerLinkKind } from './link/configure.js';
export {
  configureContainerLink,
  containerLinkKind,
  POOL_PREFIX,
  usedSubnets,
} from './link/configure.js';
export type { ContainerAddress, ContainerAddressing } from './link/container.js';
export { staticAddressing, staticContainerAddress } from './link/container.js';
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
export { siphash24 } from './siphash.js';

export type { LlmnrHeader } from './header.js';
export {
  decodeFlags,
  decodeHeader,
  encodeFlags,
  encodeHeader,
  HEADER_SIZE,
  isAcceptableQuery,
  LLMNR_MULTICAST_IPV4,
  LLMNR_MULTICAST_IPV6,
  LLMNR_PORT,
  LlmnrPacketError,
} from './header.js';

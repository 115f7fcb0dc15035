export type { ShortenedName, VethNameOptions } from './ifname.js';
export {
  ALTIFNAMSIZ,
  CONTAINER_VETH_NAME,
  IFNAMSIZ,
  isValidIfname,
  shortenIfname,
  vethHostName,
} from './ifname.js';
export { siphash24 } from './siphash.js';

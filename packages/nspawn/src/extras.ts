/**
 * What a start needs only for a network of the container's own or for a
 * disk image: the links, DHCP and nftables of @sd/networkd-veth, and
 * @sd/gpt's dissection. Reached through extras() (extras-load.ts), never
 * imported directly, so that the CLI bundle can leave it out of the start
 * of a container that uses neither (tools/build/lazy-bundle.ts).
 */
export { mountContainerImage } from './container/image.js';
export { setupContainerNetwork } from './network/network.js';

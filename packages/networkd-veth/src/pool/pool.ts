import { InvalidArgumentError, SdError } from '@sd/sys';
import { siphash24 } from '../siphash.js';
import { overlaps, type Subnet } from './ipv4.js';

/**
 * systemd-networkd's address pool for container links: private IPv4 ranges
 * in a fixed order, cut into subnets of the asked size (/28 for a ve- link,
 * /24 for a vz- bridge). A subnet is free when it overlaps no address and no
 * route the host has. Unlike networkd (which walks from the pool's start),
 * the walk starts at a place given by a hash of the link's name, so a
 * machine gets the same subnet back after a restart while it stays free,
 * and two machines rarely race for the same one.
 */

/** 192.168.0.0/16, 172.16.0.0/12, 10.0.0.0/8, as numbers: a start that makes no link parses nothing. */
export const POOLS: readonly Subnet[] = [
  { network: 0xc0a80000, prefixLength: 16 },
  { network: 0xac100000, prefixLength: 12 },
  { network: 0x0a000000, prefixLength: 8 },
];

// A fixed key: the start of the walk is the same on every run and host.
const POOL_KEY = Buffer.from('5d1f0a3c9b7e4f21a8c6e0d2b4f61937', 'hex');

export function pickSubnet(
  seed: string,
  prefixLength: number,
  used: readonly Subnet[],
  pools: readonly Subnet[] = POOLS,
): Subnet {
  if (!Number.isInteger(prefixLength) || prefixLength < 8 || prefixLength > 30)
    throw new InvalidArgumentError(`Invalid pool prefix length: ${prefixLength}`);
  const h = siphash24(Buffer.from(seed), POOL_KEY);
  for (const pool of pools) {
    if (pool.prefixLength > prefixLength) continue;
    const count = 2 ** (prefixLength - pool.prefixLength);
    const size = 2 ** (32 - prefixLength);
    const start = Number(h % BigInt(count));
    const inPool = used.filter((u) => overlaps(u, pool));
    for (let i = 0; i < count; i++) {
      const candidate: Subnet = {
        network: (pool.network + ((start + i) % count) * size) >>> 0,
        prefixLength,
      };
      if (!inPool.some((u) => overlaps(u, candidate))) return candidate;
    }
  }
  throw new SdError('EADDRNOTAVAIL', `No free /${prefixLength} subnet is left in the address pool`);
}

import { InvalidArgumentError, isDigits } from '@sd/sys';

/** IPv4 subnets as 32-bit numbers: the small arithmetic the address pool needs. */
export interface Subnet {
  /** The network address (host bits zero), as an unsigned 32-bit number. */
  network: number;
  prefixLength: number;
}

export function parseIPv4(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m || m.slice(1).some((x) => Number(x) > 255))
    throw new InvalidArgumentError(`not an IPv4 address: '${s}'`);
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

export function formatIPv4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

export function mask(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/** The subnet an address with this prefix length lies in. */
export function subnetOf(address: number | string, prefixLength: number): Subnet {
  const a = typeof address === 'string' ? parseIPv4(address) : address;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 32)
    throw new InvalidArgumentError(`Invalid prefix length: ${prefixLength}`);
  return { network: (a & mask(prefixLength)) >>> 0, prefixLength };
}

export function parseSubnet(s: string): Subnet {
  const [a, p] = s.split('/');
  if (a === undefined || p === undefined || !isDigits(p))
    throw new InvalidArgumentError(`not an IPv4 subnet: '${s}'`);
  return subnetOf(a, Number(p));
}

export function formatSubnet(s: Subnet): string {
  return `${formatIPv4(s.network)}/${s.prefixLength}`;
}

/** Whether two subnets share any address. */
export function overlaps(a: Subnet, b: Subnet): boolean {
  const m = mask(Math.min(a.prefixLength, b.prefixLength));
  return (a.network & m) >>> 0 === (b.network & m) >>> 0;
}

/** The n-th address of a subnet (1 = the first host address). */
export function nthAddress(s: Subnet, n: number): string {
  const size = 2 ** (32 - s.prefixLength);
  if (n < 0 || n >= size) throw new InvalidArgumentError(`${formatSubnet(s)} has no address number ${n}`);
  return formatIPv4((s.network + n) >>> 0);
}

export function contains(s: Subnet, address: string): boolean {
  return overlaps(s, subnetOf(address, 32));
}

import { InvalidArgumentError } from '@sd/sys';

/** IPv4 addresses as unsigned 32-bit numbers: the arithmetic of pools and masks. */

const QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function ipToInt(address: string): number {
  const m = QUAD.exec(address);
  if (!m) throw new InvalidArgumentError(`not an IPv4 address: '${address}'`);
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255 || (m[i]!.length > 1 && m[i]!.startsWith('0')))
      throw new InvalidArgumentError(`not an IPv4 address: '${address}'`);
    v = v * 256 + o;
  }
  return v;
}

export function intToIp(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

export function prefixMask(prefixLength: number): number {
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 32)
    throw new InvalidArgumentError(`IPv4 prefix length ${prefixLength} is not in 0..32`);
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/** The prefix length of a contiguous netmask, or undefined when it is not one. */
export function maskPrefix(mask: number): number | undefined {
  for (let p = 0; p <= 32; p++) if (prefixMask(p) === mask >>> 0) return p;
  return undefined;
}

export function sameSubnet(a: number, b: number, prefixLength: number): boolean {
  const m = prefixMask(prefixLength);
  return (a & m) >>> 0 === (b & m) >>> 0;
}

export function ipBytes(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

import { InvalidArgumentError } from '@sd/sys';

/**
 * SipHash-2-4 with a 128-bit key and a 64-bit result, the hash systemd uses
 * for every name-derived value (shortened interface names, MAC addresses),
 * so ours come out the same as its.
 */

const MASK = 0xffffffffffffffffn;
const rotl = (x: bigint, b: bigint): bigint => ((x << b) | (x >> (64n - b))) & MASK;

export function siphash24(data: Uint8Array, key: Uint8Array): bigint {
  if (key.length !== 16) throw new InvalidArgumentError('siphash24: the key must be 16 bytes');
  const k = Buffer.from(key.buffer, key.byteOffset, 16);
  const k0 = k.readBigUInt64LE(0);
  const k1 = k.readBigUInt64LE(8);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;

  const round = () => {
    v0 = (v0 + v1) & MASK;
    v1 = rotl(v1, 13n) ^ v0;
    v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & MASK;
    v3 = rotl(v3, 16n) ^ v2;
    v0 = (v0 + v3) & MASK;
    v3 = rotl(v3, 21n) ^ v0;
    v2 = (v2 + v1) & MASK;
    v1 = rotl(v1, 17n) ^ v2;
    v2 = rotl(v2, 32n);
  };
  const compress = (m: bigint) => {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  };

  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  const whole = buf.length - (buf.length % 8);
  for (let i = 0; i < whole; i += 8) compress(buf.readBigUInt64LE(i));
  // Last block: the remaining bytes, zero-padded, with the length in the top byte.
  let last = BigInt(buf.length & 0xff) << 56n;
  for (let i = whole; i < buf.length; i++) last |= BigInt(buf[i]!) << BigInt(8 * (i - whole));
  compress(last);

  v2 ^= 0xffn;
  round();
  round();
  round();
  round();
  return (v0 ^ v1 ^ v2 ^ v3) & MASK;
}

import { InvalidArgumentError } from '@sd/sys';

/** The "no limit" value of systemd's sizes (UINT64_MAX). */
export const SIZE_INFINITY = 0xffff_ffff_ffff_ffffn;

const SHIFT: Record<string, bigint> = { '': 0n, K: 10n, M: 20n, G: 30n, T: 40n, P: 50n, E: 60n };

/**
 * A size as systemd's parse_size() reads it with base 1024: "512", "10G",
 * "1.5M", "4 KiB"; "infinity" (and, as machinectl set-limit takes it, "-")
 * is SIZE_INFINITY. Fractions are cut at the byte; the result fits in 64 bits.
 */
export function parseSize(value: string, what = 'size'): bigint {
  const v = value.trim();
  if (v === 'infinity' || v === '-') return SIZE_INFINITY;
  const m = /^(\d+)(?:\.(\d+))?\s*([KMGTPE]?)(?:i?B)?$/i.exec(v);
  if (!m) throw new InvalidArgumentError(`Failed to parse ${what}: ${JSON.stringify(value)}`);
  const unit = 1n << (SHIFT[(m[3] ?? '').toUpperCase()] ?? 0n);
  let bytes = BigInt(m[1] ?? '0') * unit;
  const frac = m[2];
  if (frac) bytes += (BigInt(frac) * unit) / 10n ** BigInt(frac.length);
  if (bytes >= SIZE_INFINITY) throw new InvalidArgumentError(`${what} too large: ${JSON.stringify(value)}`);
  return bytes;
}

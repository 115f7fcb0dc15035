import { InvalidArgumentError } from '@sd/sys';

/** "infinity" as a time span (USEC_INFINITY). */
export const USEC_INFINITY = 0xffff_ffff_ffff_ffffn;

const SEC = 1_000_000n;
// systemd's units; a month is 30.44 days and a year 365.25 days, as in time-util.
const UNITS: Array<[RegExp, bigint]> = [
  [/^(us|usec|µs|μs)$/, 1n],
  [/^(ms|msec)$/, 1000n],
  [/^(s|sec|second|seconds)$/, SEC],
  [/^(m|min|minute|minutes)$/, 60n * SEC],
  [/^(h|hr|hour|hours)$/, 3600n * SEC],
  [/^(d|day|days)$/, 86400n * SEC],
  [/^(w|week|weeks)$/, 7n * 86400n * SEC],
  [/^(M|month|months)$/, 2629800n * SEC],
  [/^(y|year|years)$/, 31557600n * SEC],
];

function unitOf(u: string, defaultUnit: bigint): bigint | undefined {
  if (u === '') return defaultUnit;
  for (const [re, usec] of UNITS) if (re.test(u)) return usec;
  return undefined;
}

/**
 * A time span as systemd's parse_time()/parse_sec() reads it, in
 * microseconds: "5", "1.5s", "1h 30min", "2d4h", "infinity". A bare number
 * is in `defaultUnit` (seconds unless told).
 */
export function parseTimespan(value: string, what = 'time span', defaultUnit = SEC): bigint {
  const v = value.trim();
  if (v === 'infinity') return USEC_INFINITY;
  const fail = () => new InvalidArgumentError(`Failed to parse ${what}: ${JSON.stringify(value)}`);
  if (v === '') throw fail();
  let total = 0n;
  const re = /\s*(\d+)(?:\.(\d+))?\s*([A-Za-zµμ]*)/y;
  let at = 0;
  while (at < v.length) {
    re.lastIndex = at;
    const m = re.exec(v);
    if (!m || m[0] === '') throw fail();
    const unit = unitOf(m[3] ?? '', defaultUnit);
    if (unit === undefined) throw fail();
    total += BigInt(m[1] ?? '0') * unit;
    const frac = m[2];
    if (frac) total += (BigInt(frac) * unit) / 10n ** BigInt(frac.length);
    at = re.lastIndex;
    while (v[at] === ' ') at++;
  }
  if (total >= USEC_INFINITY) throw fail();
  return total;
}

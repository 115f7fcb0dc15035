/**
 * Output shaped like systemd's machinectl: borderless tables (columns
 * separated by a space, the header underlined on a colour terminal), sizes
 * as "1.5G", timestamps as "Fri 2024-05-10 12:00:00 UTC", "-" for empty
 * cells, and the same rows as JSON for --json.
 */

export const UINT64_MAX = 0xffff_ffff_ffff_ffffn;

export interface Column {
  header: string;
  /** Right-align (numbers, sizes). */
  right?: boolean;
}

export type Cell = string | number | bigint | boolean | undefined | null | string[];

export interface TableOptions {
  legend: boolean;
  color: boolean;
}

const cellText = (c: Cell): string => {
  if (c === undefined || c === null || c === '') return '-';
  if (Array.isArray(c)) return c.length ? c.join('\n') : '-';
  if (typeof c === 'boolean') return c ? 'yes' : 'no';
  return String(c);
};

/** A borderless table; multi-line cells (addresses) continue on the next lines. */
export function renderTable(columns: Column[], rows: Cell[][], opts: TableOptions): string {
  const text = rows.map((r) => columns.map((_, i) => cellText(r[i]).split('\n')));
  const widths = columns.map((c, i) =>
    Math.max(opts.legend ? c.header.length : 0, ...text.map((r) => Math.max(...r[i]!.map((l) => l.length)))),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (columns[i]!.right ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join(' ')
      .trimEnd();
  const out: string[] = [];
  if (opts.legend) {
    const h = line(columns.map((c) => c.header));
    out.push(opts.color ? `\x1b[4m${h.padEnd(widths.reduce((a, b) => a + b + 1, -1))}\x1b[0m` : h);
  }
  for (const r of text) {
    const height = Math.max(...r.map((c) => c.length));
    for (let k = 0; k < height; k++) out.push(line(r.map((c) => c[k] ?? '')));
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** JSON rows keyed by the column headers in lower case (systemd's table JSON). */
export function tableJson(columns: Column[], rows: unknown[][], mode: 'pretty' | 'short'): string {
  const objs = rows.map((r) =>
    Object.fromEntries(
      columns.map((c, i) => [c.header.toLowerCase().replace(/[^a-z0-9]+/g, '_'), jsonValue(r[i])]),
    ),
  );
  return `${mode === 'pretty' ? JSON.stringify(objs, null, 2) : JSON.stringify(objs)}\n`;
}

export function jsonValue(v: unknown): unknown {
  if (typeof v === 'bigint')
    return v === UINT64_MAX ? null : v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (v instanceof Uint8Array) return [...v];
  if (v === undefined) return null;
  return v;
}

const SIZE_UNITS: Array<[string, bigint]> = [
  ['E', 1n << 60n],
  ['P', 1n << 50n],
  ['T', 1n << 40n],
  ['G', 1n << 30n],
  ['M', 1n << 20n],
  ['K', 1n << 10n],
];

/** systemd's format_bytes: "512B", "4.0K", "1.5G" (one decimal, truncated); undefined for 2^64-1. */
export function formatBytes(v: bigint | number): string | undefined {
  const t = BigInt(v);
  if (t === UINT64_MAX) return undefined;
  for (const [suffix, f] of SIZE_UNITS) {
    if (t >= f) return `${t / f}.${((t * 10n) / f) % 10n}${suffix}`;
  }
  return `${t}B`;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const pad = (n: number) => String(n).padStart(2, '0');

function zoneName(d: Date): string {
  if (!process.env.TZ || process.env.TZ === 'UTC' || process.env.TZ === ':UTC') {
    if (d.getTimezoneOffset() === 0) return 'UTC';
  }
  const part = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' })
    .formatToParts(d)
    .find((p) => p.type === 'timeZoneName');
  return part?.value ?? 'UTC';
}

/** "Fri 2024-05-10 12:00:00 UTC" for µs since the epoch; undefined for 0 and 2^64-1 (unset). */
export function formatTimestamp(usec: bigint | number): string | undefined {
  const u = BigInt(usec);
  if (u === 0n || u === UINT64_MAX) return undefined;
  const d = new Date(Number(u / 1000n));
  return `${DAYS[d.getDay()]} ${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${zoneName(d)}`;
}

/** "5min ago", "2h 3min ago" — systemd's relative time, coarsely. */
export function formatRelative(usec: bigint | number, nowMs = Date.now()): string | undefined {
  const u = BigInt(usec);
  if (u === 0n || u === UINT64_MAX) return undefined;
  let s = Math.max(0, Math.floor((nowMs - Number(u / 1000n)) / 1000));
  const parts: string[] = [];
  for (const [unit, secs] of [
    ['y', 31557600],
    ['month', 2629800],
    ['w', 604800],
    ['d', 86400],
    ['h', 3600],
    ['min', 60],
  ] as const) {
    if (s >= secs && parts.length < 2) {
      parts.push(`${Math.floor(s / secs)}${unit}`);
      s %= secs;
    }
  }
  if (parts.length < 2 && (s > 0 || parts.length === 0)) parts.push(`${s}s`);
  return `${parts.join(' ')} ago`;
}

/** An address of GetMachineAddresses (family, bytes) as text. */
export function formatAddress(family: number, bytes: Uint8Array): string {
  if (family === 2 && bytes.length === 4) return [...bytes].join('.');
  if (family === 10 && bytes.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
    // Longest run of zero groups becomes '::'.
    let best = -1;
    let bestLen = 0;
    for (let i = 0; i < 8; ) {
      if (groups[i] !== '0') {
        i++;
        continue;
      }
      let j = i;
      while (j < 8 && groups[j] === '0') j++;
      if (j - i > bestLen && j - i > 1) {
        best = i;
        bestLen = j - i;
      }
      i = j;
    }
    if (best < 0) return groups.join(':');
    return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
  }
  return Buffer.from(bytes).toString('hex');
}

/** Whether to colour: a terminal, and NO_COLOR / SYSTEMD_COLORS=0 / TERM=dumb not set. */
export function useColor(isTTY: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.SYSTEMD_COLORS !== undefined) return !['0', 'no', 'false'].includes(env.SYSTEMD_COLORS);
  if (env.TERM === 'dumb') return false;
  return isTTY === true;
}

/** `KEY=value` lines of show, or values only (--value), filtered by -p. */
export function renderProperties(
  props: Record<string, unknown>,
  opts: { properties: string[]; value: boolean; all: boolean },
): string {
  const names = opts.properties.length ? opts.properties : Object.keys(props).sort();
  const out: string[] = [];
  for (const name of names) {
    if (!(name in props)) continue;
    const text = propertyText(props[name]);
    if (!opts.all && !opts.properties.length && text === '') continue;
    out.push(opts.value ? text : `${name}=${text}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** A property value as systemctl/machinectl show prints it. */
export function propertyText(v: unknown): string {
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (Array.isArray(v)) return v.map(propertyText).join(' ');
  if (v === undefined || v === null) return '';
  return String(v);
}

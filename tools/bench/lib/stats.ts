/** Small statistics and table printing shared by the benchmarks in tools/bench. */

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  // Nearest-rank: the value at or above the q-th fraction of the samples.
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export interface Summary {
  runs: number;
  median: number;
  p90: number;
  min: number;
}

export function summarize(samples: readonly number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  return { runs: s.length, median: quantile(s, 0.5), p90: quantile(s, 0.9), min: s[0] ?? Number.NaN };
}

/** A borderless table, columns padded to their widest cell; numbers right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export const ms = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)} ms` : '-');

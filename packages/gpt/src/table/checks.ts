import { ImageError } from '../errors.js';
import type { Extent } from './types.js';

/** Checks shared by the GPT and MBR readers: no two partitions share a sector. */
export function assertNoOverlap(image: string, extents: Extent[], unit: string): void {
  const sorted = [...extents].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.first <= prev.last) {
      throw new ImageError(
        'PARTITION_OVERLAP',
        image,
        `partitions ${prev.number} (${unit} ${prev.first}..${prev.last}) and ${cur.number} (${unit} ${cur.first}..${cur.last}) overlap`,
      );
    }
  }
}

import { type IdRange, mapIn, mapOut } from '../inspect/uid-map.js';

/**
 * How a machine copy shifts owners, as data: the copy helper process
 * (copy-jobs.ts) rebuilds the same mapping from it.
 */
export type IdMapSpec = { direction: 'to' | 'from'; uids: IdRange[] } | { identity: true };

export function idMapper(spec: IdMapSpec): (id: number) => number {
  if ('identity' in spec) return (id) => id;
  const { uids } = spec;
  // Into the machine ids are shifted by its map, one it does not cover becomes nobody; out of it, the reverse.
  return spec.direction === 'to'
    ? (id) => mapOut(uids, id) ?? mapOut(uids, 65534) ?? 65534
    : (id) => mapIn(uids, id) ?? 65534;
}

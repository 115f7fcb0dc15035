import { readFileSync } from 'node:fs';
import { SdError } from '@sd/sys';

/**
 * A machine's user namespace mapping, from /proc/PID/uid_map and gid_map:
 * the UID shift (where the machine's uid 0 lives on the host) and the
 * Map{From,To}Machine{User,Group} lookups.
 */

export interface IdRange {
  inside: number;
  outside: number;
  count: number;
}

export function parseIdMap(text: string): IdRange[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3 && f.every(Number.isInteger))
    .map(([inside, outside, count]) => ({ inside: inside!, outside: outside!, count: count! }));
}

export function readIdMap(pid: number, kind: 'uid' | 'gid'): IdRange[] {
  return parseIdMap(readFileSync(`/proc/${pid}/${kind}_map`, 'utf8'));
}

/** Whether the map is the identity of the initial namespace (no user namespace of its own). */
export function isIdentity(map: readonly IdRange[]): boolean {
  return map.length === 1 && map[0]!.inside === 0 && map[0]!.outside === 0 && map[0]!.count === 4294967295;
}

/** The host uid of the machine's root: 0 without a user namespace. */
export function uidShift(pid: number): number {
  const uids = readIdMap(pid, 'uid');
  if (isIdentity(uids)) return 0;
  const first = uids[0];
  if (first?.inside !== 0)
    throw new SdError('ENXIO', 'Machine does not map root to a contiguous range: no UID shift');
  const gids = readIdMap(pid, 'gid');
  const g = gids[0];
  if (g?.inside !== 0 || g.outside !== first.outside)
    throw new SdError('ENXIO', "Machine's UID and GID shifts differ");
  return first.outside;
}

/** An id inside → outside, or undefined when the map does not cover it. */
export function mapOut(map: readonly IdRange[], id: number): number | undefined {
  for (const r of map) if (id >= r.inside && id - r.inside < r.count) return r.outside + (id - r.inside);
  return undefined;
}

/** An id outside → inside, or undefined. */
export function mapIn(map: readonly IdRange[], id: number): number | undefined {
  for (const r of map) if (id >= r.outside && id - r.outside < r.count) return r.inside + (id - r.outside);
  return undefined;
}

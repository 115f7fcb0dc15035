// Validation of relative cgroup paths such as 'machine.slice/machine-foo.scope'.

import { InvalidArgumentError } from '../errors.js';

/** Prefixes of kernel interface files: a cgroup named like one could shadow or confuse them. */
const RESERVED_PREFIXES = new Set([
  'cgroup',
  'cpu',
  'cpuacct',
  'cpuset',
  'memory',
  'pids',
  'io',
  'blkio',
  'devices',
  'freezer',
  'hugetlb',
  'misc',
  'net_cls',
  'net_prio',
  'perf_event',
  'rdma',
  'notify_on_release',
]);

/** Whole names of v1 interface files without a dot. */
const RESERVED_NAMES = new Set(['tasks', 'notify_on_release', 'release_agent']);

/** A component's characters: [A-Za-z0-9:_.@\\-] (the backslash of systemd's \x2d escapes). Not a regex: see trimSlashes. */
function segmentCharsValid(seg: string): boolean {
  if (seg.length === 0) return false;
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    const ok =
      (c >= 0x30 && c <= 0x39) || // 0-9
      (c >= 0x41 && c <= 0x5a) || // A-Z
      (c >= 0x61 && c <= 0x7a) || // a-z
      c === 0x3a || // :
      c === 0x5f || // _
      c === 0x2e || // .
      c === 0x40 || // @
      c === 0x5c || // backslash
      c === 0x2d; // -
    if (!ok) return false;
  }
  return true;
}
const MAX_SEGMENT = 255;
const MAX_DEPTH = 32;

/**
 * `s` without leading and trailing slashes. (Not a regex: this runs at every
 * container start, and each regex compiles at its first use.)
 */
export function trimSlashes(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && s.charCodeAt(start) === 0x2f) start++;
  while (end > start && s.charCodeAt(end - 1) === 0x2f) end--;
  return s.slice(start, end);
}

/**
 * Checks a cgroup path relative to the hierarchy roots and returns it
 * normalised (no leading or trailing '/'). A leading '/' means "from the root",
 * as in systemd's cgroup paths; '..', '.', empty segments and odd characters
 * are refused, as are names that collide with kernel files (`cgroup.procs`,
 * `memory.max`): systemd escapes those with a leading '_', so callers should too.
 */
export function validateCgroupPath(path: string): string {
  const trimmed = trimSlashes(path);
  if (trimmed === '') throw new InvalidArgumentError(`cgroup path '${path}' names the root`);
  const segments = trimmed.split('/');
  if (segments.length > MAX_DEPTH) throw new InvalidArgumentError(`cgroup path '${path}' is too deep`);
  for (const seg of segments) {
    if (seg === '' || seg === '.' || seg === '..') {
      throw new InvalidArgumentError(`cgroup path '${path}' has an invalid component '${seg}'`);
    }
    if (seg.length > MAX_SEGMENT) {
      throw new InvalidArgumentError(`cgroup path '${path}': component '${seg.slice(0, 32)}…' is too long`);
    }
    if (!segmentCharsValid(seg) || seg.startsWith('.')) {
      throw new InvalidArgumentError(`cgroup path '${path}': component '${seg}' has invalid characters`);
    }
    const dot = seg.indexOf('.');
    const prefix = dot < 0 ? seg : seg.slice(0, dot);
    if ((dot >= 0 && RESERVED_PREFIXES.has(prefix)) || RESERVED_NAMES.has(seg)) {
      throw new InvalidArgumentError(
        `cgroup path '${path}': component '${seg}' collides with kernel files (escape it as '_${seg}')`,
      );
    }
  }
  return segments.join('/');
}

// Which cgroup hierarchies this process sees, from /proc/self/mountinfo and statfs.

import { readFileSync } from 'node:fs';
import { SdError } from '../errors.js';
import { unescapeMountInfo } from '../mount/mountinfo.js';
import { fsMagic } from './fs.js';

export const CGROUP2_SUPER_MAGIC = 0x63677270n;
export const CGROUP_SUPER_MAGIC = 0x27e0ebn;

export type CgroupMode = 'v1' | 'hybrid' | 'v2';

/** One mounted cgroup v1 hierarchy. */
export interface CgroupHierarchy {
  /** Where it is mounted (e.g. /sys/fs/cgroup/memory). */
  mountPoint: string;
  /** Its controllers (`memory`, `cpu`, …) and its name as `name=systemd`. */
  controllers: string[];
  /** The path inside the hierarchy that is the mount's root (`/` unless namespaced). */
  root: string;
}

export interface CgroupLayout {
  mode: CgroupMode;
  /** The cgroup2 mount: /sys/fs/cgroup (v2) or /sys/fs/cgroup/unified (hybrid); undefined in pure v1. */
  unifiedRoot: string | undefined;
  /** v1 controller (or `name=…`) → mount point of its hierarchy. */
  controllers: Record<string, string>;
  /** The v1 hierarchies, one entry a mount (co-mounted controllers share one). */
  hierarchies: CgroupHierarchy[];
}

/** The fields of a mountinfo line that matter here. */
interface MountEntry {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0) continue;
    const root = fields[3];
    const mountPoint = fields[4];
    const fsType = fields[sep + 1];
    if (root === undefined || mountPoint === undefined || fsType === undefined) continue;
    out.push({
      root: unescapeMountInfo(root),
      mountPoint: unescapeMountInfo(mountPoint),
      fsType,
      superOptions: (fields[sep + 3] ?? '').split(','),
    });
  }
  return out;
}

const NOT_CONTROLLERS = new Set(['rw', 'ro', 'clone_children', 'noprefix', 'xattr', 'cpuset_v2_mode']);

/**
 * Builds the layout from mountinfo text; `magicOf` is statfs (injectable for tests).
 * The first mount of each hierarchy wins (later ones are usually bind mounts).
 */
export function layoutFromMountinfo(text: string, magicOf: (path: string) => bigint = fsMagic): CgroupLayout {
  const mounts = parseMountinfo(text);
  let unifiedRoot: string | undefined;
  const hierarchies: CgroupHierarchy[] = [];
  const controllers: Record<string, string> = {};
  for (const m of mounts) {
    if (m.fsType === 'cgroup2') {
      // Prefer the canonical locations when cgroup2 is mounted more than once.
      const canonical = m.mountPoint === '/sys/fs/cgroup' || m.mountPoint === '/sys/fs/cgroup/unified';
      if (unifiedRoot === undefined || canonical) unifiedRoot = m.mountPoint;
    } else if (m.fsType === 'cgroup') {
      const ctrls = m.superOptions.filter(
        (o) => !NOT_CONTROLLERS.has(o) && !o.startsWith('release_agent=') && o !== '',
      );
      if (ctrls.length === 0 || ctrls.every((c) => controllers[c] !== undefined)) continue;
      hierarchies.push({ mountPoint: m.mountPoint, controllers: ctrls, root: m.root });
      for (const c of ctrls) controllers[c] ??= m.mountPoint;
    }
  }
  // Trust statfs over mountinfo for the decision (mountinfo may be stale in odd namespaces).
  if (unifiedRoot !== undefined && magicOf(unifiedRoot) !== CGROUP2_SUPER_MAGIC) unifiedRoot = undefined;
  const v1 = hierarchies.filter((h) => {
    try {
      return magicOf(h.mountPoint) === CGROUP_SUPER_MAGIC;
    } catch {
      return false;
    }
  });
  for (const k of Object.keys(controllers)) {
    if (!v1.some((h) => h.mountPoint === controllers[k])) delete controllers[k];
  }
  let mode: CgroupMode;
  if (unifiedRoot === '/sys/fs/cgroup' || (v1.length === 0 && unifiedRoot !== undefined)) {
    mode = 'v2';
  } else if (v1.length === 0) {
    throw new SdError('ENOENT', 'no cgroup file system is mounted');
  } else {
    mode = unifiedRoot === undefined ? 'v1' : 'hybrid';
  }
  return { mode, unifiedRoot, controllers, hierarchies: v1 };
}

/** The cgroup layout of this process's mount namespace. */
export function detectCgroups(): CgroupLayout {
  return layoutFromMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

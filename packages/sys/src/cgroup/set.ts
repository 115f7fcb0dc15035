import { isDigits } from '../digits.js';
import { Cgroup } from './cgroup.js';
import type { CgroupHierarchy, CgroupLayout } from './detect.js';
import { trimSlashes } from './path.js';

/**
 * A process's cgroups in every mounted hierarchy. /proc/PID/cgroup gives a
 * path per hierarchy, and they differ (a supervisor limited in one v1
 * controller sits deeper there), so one group of processes is one Cgroup per
 * distinct path, each over the hierarchies that use that path, the unified
 * one first. sd-nspawn's scope and sd-machined's machine cgroups are both
 * such sets.
 */

export interface CgroupPlacement {
  /** Path in the unified hierarchy, without leading slash ('' for the root); undefined on pure v1. */
  unified: string | undefined;
  /** Path per v1 hierarchy, keyed by its controller list ('memory', 'cpu,cpuacct', 'name=systemd'). */
  v1: Record<string, string>;
}

/** Parses /proc/PID/cgroup. */
export function parseProcCgroup(text: string): CgroupPlacement {
  let unified: string | undefined;
  const v1: Record<string, string> = {};
  for (const line of text.split('\n')) {
    // "ID:CONTROLLERS:PATH": the path may hold ':'.
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    const id = line.slice(0, a);
    if (b < 0 || !isDigits(id)) continue;
    const controllers = line.slice(a + 1, b);
    const path = trimSlashes(line.slice(b + 1));
    if (id === '0' && controllers === '') unified = path;
    else v1[controllers] = path;
  }
  return { unified, v1 };
}

export interface PlacementOptions {
  /**
   * A path below the placement in every hierarchy (the unit to make there).
   * Without one, a hierarchy whose path is its root is left out: a process at
   * the root has no group of its own there.
   */
  below?: string;
}

const join = (...parts: string[]) => parts.filter(Boolean).join('/');

export class CgroupSet {
  /** One Cgroup per distinct path; the first holds the unified hierarchy when there is one. */
  readonly groups: readonly Cgroup[];

  constructor(groups: readonly Cgroup[]) {
    this.groups = groups;
  }

  /** The cgroups at `p` (below it with `opts.below`) in every hierarchy of `layout`. */
  static at(p: CgroupPlacement, layout: CgroupLayout, opts: PlacementOptions = {}): CgroupSet {
    const below = opts.below ?? '';
    const groups: Cgroup[] = [];
    const unified = join(p.unified ?? '', below);
    if (layout.unifiedRoot !== undefined && (p.unified !== undefined || below) && unified) {
      groups.push(
        new Cgroup(unified, {
          layout: { mode: 'v2', unifiedRoot: layout.unifiedRoot, controllers: {}, hierarchies: [] },
        }),
      );
    }
    if (layout.mode !== 'v2') {
      const byPath = new Map<string, CgroupHierarchy[]>();
      for (const h of layout.hierarchies) {
        const own = p.v1[h.controllers.join(',')] ?? '';
        // A namespaced mount shows only its own subtree: the path is relative to its root.
        const root = trimSlashes(h.root);
        const base = root && own.startsWith(root) ? trimSlashes(own.slice(root.length)) : own;
        const path = join(base, below);
        if (!path) continue;
        byPath.set(path, [...(byPath.get(path) ?? []), h]);
      }
      for (const [path, hierarchies] of byPath) {
        const controllers: Record<string, string> = {};
        for (const h of hierarchies) for (const c of h.controllers) controllers[c] = h.mountPoint;
        groups.push(
          new Cgroup(path, { layout: { mode: 'v1', unifiedRoot: undefined, controllers, hierarchies } }),
        );
      }
    }
    return new CgroupSet(groups);
  }

  /** Every directory, unified first. */
  get dirs(): string[] {
    return this.groups.flatMap((g) => g.dirs);
  }

  get unifiedDir(): string | undefined {
    return this.groups[0]?.unifiedDir;
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const g of this.groups) for (const pid of g.pids()) all.add(pid);
    return [...all].sort((a, b) => a - b);
  }

  contains(pid: number): boolean {
    return this.pids().includes(pid);
  }

  isEmpty(): boolean {
    return this.groups.every((g) => !g.exists() || g.isEmpty());
  }

  /** mkdir -p in every hierarchy. */
  create(): void {
    for (const g of this.groups) g.create();
  }

  attach(pid: number): void {
    for (const g of this.groups) g.attach(pid);
  }

  /** Signals every process; SIGKILL waits until the cgroups are empty. */
  async kill(signal: number, timeoutMs = 5000): Promise<number> {
    let n = 0;
    for (const g of this.groups) {
      if (!g.exists()) continue;
      n = Math.max(n, await g.kill(signal, { timeoutMs }));
    }
    return n;
  }

  /** Removes the (empty) cgroups in every hierarchy. */
  async remove(timeoutMs?: number): Promise<void> {
    for (const g of this.groups) await g.remove(timeoutMs === undefined ? {} : { timeoutMs });
  }

  /** Kills what is left and removes every cgroup, going on past a failure; throws the first. */
  async destroy(signal: number): Promise<void> {
    let error: unknown;
    for (const g of this.groups) {
      try {
        // Most often there is nothing left to kill: then rmdir alone does it.
        if (g.tryRemove()) continue;
        if (!g.isEmpty()) await g.kill(signal);
        await g.remove();
      } catch (e) {
        error ??= e;
      }
    }
    if (error) throw error;
  }
}

import { readdirSync, readFileSync, rmdirSync } from 'node:fs';
import {
  Cgroup,
  type CgroupHierarchy,
  type CgroupLayout,
  type CgroupPlacement,
  detectCgroups,
  escapeUnitName,
  machineScopeName,
  parseProcCgroup,
  SIG,
} from '@sd/sys';

/**
 * The cgroup of a machine, in every mounted hierarchy. A machine registered
 * with RegisterMachine keeps the cgroup its manager made (read from the
 * leader's /proc/PID/cgroup); CreateMachine makes machine.slice/NAME.scope
 * itself (see scope.ts). Either way kill and terminate reach every process
 * in it, not just the leader.
 */

/** Where a process sits: the unified path and the path in each v1 hierarchy (by its controller list). */
export type { CgroupPlacement } from '@sd/sys';

export class MachineCgroup {
  readonly groups: Cgroup[];
  /** The path that names the machine's unit: unified when there is one, else name=systemd's or the first. */
  readonly mainPath: string;

  constructor(groups: Cgroup[], mainPath: string) {
    this.groups = groups;
    this.mainPath = mainPath;
  }

  /** The cgroups a process is in (a process at the root of every hierarchy has none worth using). */
  static ofProcess(pid: number, layout: CgroupLayout = detectCgroups()): MachineCgroup | undefined {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    } catch {
      return undefined;
    }
    return MachineCgroup.fromPlacement(parseProcCgroup(text), layout);
  }

  static fromPlacement(p: CgroupPlacement, layout: CgroupLayout): MachineCgroup | undefined {
    const groups: Cgroup[] = [];
    if (layout.unifiedRoot !== undefined && p.unified) {
      groups.push(
        new Cgroup(p.unified, {
          layout: { mode: 'v2', unifiedRoot: layout.unifiedRoot, controllers: {}, hierarchies: [] },
        }),
      );
    }
    if (layout.mode !== 'v2') {
      const byPath = new Map<string, CgroupHierarchy[]>();
      for (const h of layout.hierarchies) {
        const path = p.v1[h.controllers.join(',')];
        // Root of a hierarchy: nothing of the machine's own there.
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
    const main = p.unified || p.v1['name=systemd'] || Object.values(p.v1).find(Boolean);
    if (!groups.length || !main) return undefined;
    return new MachineCgroup(groups, main);
  }

  /**
   * The cgroups of a machine whose leader is `pid`: where the leader sits,
   * cut at the machine's unit in every hierarchy (a booted guest's systemd
   * sits in init.scope below it, sd-nspawn's payload in a child group of the
   * devices hierarchy), so that the machine is its whole unit, as systemd's
   * machined sees it. Undefined when the leader is in no unit of that machine.
   */
  static ofMachineLeader(
    pid: number,
    machine: string,
    layout: CgroupLayout = detectCgroups(),
  ): MachineCgroup | undefined {
    const cg = MachineCgroup.ofProcess(pid, layout);
    if (!cg || !isMachineUnitPath(cg.mainPath, machine)) return undefined;
    const cut = (path: string) => cutAtMachineUnit(path, machine);
    return new MachineCgroup(
      cg.groups.map((g) => new Cgroup(cut(g.path), { layout: g.layout })),
      cut(cg.mainPath),
    );
  }

  /** The unit name systemd would report: the last path component when it is a scope or service. */
  get unit(): string {
    const last = this.mainPath.split('/').pop() ?? '';
    return /\.(scope|service)$/.test(last) ? last : '';
  }

  get dirs(): string[] {
    return this.groups.flatMap((g) => g.dirs);
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

  attach(pid: number): void {
    for (const g of this.groups) g.attach(pid);
  }

  /** Signals every process in the machine; SIGKILL waits until the cgroup is empty. */
  async kill(signal: number, timeoutMs = 5000): Promise<number> {
    let n = 0;
    for (const g of this.groups) {
      if (!g.exists()) continue;
      n = Math.max(n, await g.kill(signal, { timeoutMs }));
    }
    return n;
  }

  /** Kills what is left and removes the cgroup in every hierarchy. */
  async destroy(): Promise<void> {
    if (!this.isEmpty()) await this.kill(SIG.KILL);
    await this.remove();
  }

  /** Removes the cgroup (empty: rmdir refuses otherwise) in every hierarchy, and machine.slice once no machine is left in it. */
  async remove(timeoutMs?: number): Promise<void> {
    for (const g of this.groups) await g.remove(timeoutMs === undefined ? {} : { timeoutMs });
    // The slice goes too once no machine is left in it (busy: another machine's; ours: made on demand).
    for (const d of this.dirs) {
      const parent = d.slice(0, d.lastIndexOf('/'));
      if (parent.endsWith('/machine.slice'))
        try {
          rmdirSync(parent);
        } catch {}
    }
  }
}

/** Whether `path` (a cgroup path) is machine.slice/machine-NAME.scope, below wherever its manager runs. */
export function isMachineScopePath(path: string, machine: string): boolean {
  const parts = path.split('/').filter(Boolean);
  return parts.length >= 2 && parts.at(-1) === machineScopeName(machine) && parts.at(-2) === 'machine.slice';
}

/**
 * Whether `path` lies in a unit made for the machine called `machine`: its
 * scope (sd-nspawn's, systemd's machined's), or the systemd-nspawn@NAME.service
 * (systemd-vmspawn@) that systemd runs a machine in (nspawn --keep-unit), or
 * a cgroup below one (a booted guest's systemd moves itself to init.scope
 * inside its scope before it is registered). Anything else (the root, a
 * user's session, another service) is not a machine's to be killed as one.
 */
export function isMachineUnitPath(path: string, machine: string): boolean {
  const parts = path.split('/').filter(Boolean);
  const escaped = escapeUnitName(machine);
  const services = [`systemd-nspawn@${escaped}.service`, `systemd-vmspawn@${escaped}.service`];
  return parts.some(
    (p, i) => (p === machineScopeName(machine) && parts[i - 1] === 'machine.slice') || services.includes(p),
  );
}

/** `path` up to and including the machine's unit component; `path` itself when it has none. */
export function cutAtMachineUnit(path: string, machine: string): string {
  const parts = path.split('/');
  const escaped = escapeUnitName(machine);
  const units = [
    machineScopeName(machine),
    `systemd-nspawn@${escaped}.service`,
    `systemd-vmspawn@${escaped}.service`,
  ];
  const i = parts.findIndex(
    (p, j) => units.includes(p) && (p !== units[0] || parts[j - 1] === 'machine.slice'),
  );
  return i < 0 ? path : parts.slice(0, i + 1).join('/');
}

/**
 * The cgroup directories named like `machine`'s scope in the unified (or
 * name=systemd) hierarchy: a bounded walk for the machines whose state
 * file could not be read. Paths relative to the hierarchy's root.
 */
export function findMachineScopes(machine: string, layout: CgroupLayout, maxDirs = 20_000): string[] {
  const root =
    layout.unifiedRoot ?? layout.hierarchies.find((h) => h.controllers.includes('name=systemd'))?.mountPoint;
  if (!root) return [];
  const want = machineScopeName(machine);
  const found: string[] = [];
  const queue: Array<[string, number]> = [['', 0]];
  let seen = 0;
  while (queue.length && seen < maxDirs) {
    const [rel, depth] = queue.shift()!;
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(rel ? `${root}/${rel}` : root, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      seen++;
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.name === want && rel.endsWith('machine.slice')) found.push(p);
      else if (depth < 8 && !e.name.endsWith('.scope')) queue.push([p, depth + 1]);
    }
  }
  return found;
}

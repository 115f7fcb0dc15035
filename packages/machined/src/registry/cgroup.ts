import { readdirSync, readFileSync } from 'node:fs';
import { cutAtMachineUnit, isMachineUnitPath, machineScopeName, removeEmptyMachineSlices } from '@sd/basic';
import {
  Cgroup,
  type CgroupLayout,
  type CgroupPlacement,
  CgroupSet,
  detectCgroups,
  parseProcCgroup,
  SIG,
} from '@sd/sys';

/**
 * The cgroup of a machine, in every mounted hierarchy (@sd/sys's CgroupSet).
 * A machine registered with RegisterMachine keeps the cgroup its manager
 * made (read from the leader's /proc/PID/cgroup); CreateMachine makes
 * machine.slice/NAME.scope itself (see scope.ts). Either way kill and
 * terminate reach every process in it, not just the leader.
 */

export { cutAtMachineUnit, isMachineScopePath, isMachineUnitPath } from '@sd/basic';
/** Where a process sits: the unified path and the path in each v1 hierarchy (by its controller list). */
export type { CgroupPlacement } from '@sd/sys';

export class MachineCgroup extends CgroupSet {
  /** The path that names the machine's unit: unified when there is one, else name=systemd's or the first. */
  readonly mainPath: string;

  constructor(groups: readonly Cgroup[], mainPath: string) {
    super(groups);
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
    const { groups } = CgroupSet.at(p, layout);
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

  /** Kills what is left and removes the cgroup in every hierarchy. */
  override async destroy(): Promise<void> {
    try {
      await super.destroy(SIG.KILL);
    } finally {
      removeEmptyMachineSlices(this.dirs);
    }
  }

  /** Removes the cgroup (empty: rmdir refuses otherwise) in every hierarchy, and machine.slice once no machine is left in it. */
  override async remove(timeoutMs?: number): Promise<void> {
    await super.remove(timeoutMs);
    removeEmptyMachineSlices(this.dirs);
  }
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

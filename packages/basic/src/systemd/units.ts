import { rmdirSync } from 'node:fs';
import type { CgroupLayout } from '@sd/sys';

/**
 * systemd's names for units and where machines live in the cgroup tree:
 * machine.slice/machine-NAME.scope, as systemd-machined makes it and as
 * sd-nspawn and sd-machined both make, find and remove it.
 */

/** [A-Za-z0-9:_] as a byte. (Not a regex: this runs at every container start, and each regex compiles.) */
const isUnitNameByte = (b: number): boolean =>
  (b >= 0x30 && b <= 0x3a) /* 0-9 : */ || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f;

/** systemd's unit-name escaping: bytes outside [A-Za-z0-9:_.] (and a leading '.') become \xNN. */
export function escapeUnitName(name: string): string {
  let out = '';
  for (const [i, b] of [...Buffer.from(name)].entries()) {
    if (isUnitNameByte(b) || (b === 0x2e /* . */ && i > 0)) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The slice machines' scopes live in. */
export const MACHINE_SLICE = 'machine.slice';

/** The scope systemd-machined would create for a machine: machine-NAME.scope (escaped). */
export function machineScopeName(machine: string): string {
  return `machine-${escapeUnitName(machine)}.scope`;
}

/** machine.slice/machine-NAME.scope: the machine's cgroup below wherever its manager puts it. */
export function machineScopePath(machine: string): string {
  return `${MACHINE_SLICE}/${machineScopeName(machine)}`;
}

/** Whether `path` (a cgroup path) is machine.slice/machine-NAME.scope, below wherever its manager runs. */
export function isMachineScopePath(path: string, machine: string): boolean {
  const parts = path.split('/').filter(Boolean);
  return parts.length >= 2 && parts.at(-1) === machineScopeName(machine) && parts.at(-2) === MACHINE_SLICE;
}

/** The units a machine may run in: its scope, or the systemd-nspawn@/systemd-vmspawn@ service systemd runs it in. */
function machineUnits(machine: string): string[] {
  const escaped = escapeUnitName(machine);
  return [
    machineScopeName(machine),
    `systemd-nspawn@${escaped}.service`,
    `systemd-vmspawn@${escaped}.service`,
  ];
}

/** The index of the machine's unit component in `parts` (a scope counts only inside machine.slice); -1 if none. */
function machineUnitIndex(parts: readonly string[], machine: string): number {
  const units = machineUnits(machine);
  return parts.findIndex((p, j) => units.includes(p) && (p !== units[0] || parts[j - 1] === MACHINE_SLICE));
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
  return machineUnitIndex(path.split('/'), machine) >= 0;
}

/** `path` up to and including the machine's unit component; `path` itself when it has none. */
export function cutAtMachineUnit(path: string, machine: string): string {
  const parts = path.split('/');
  const i = machineUnitIndex(parts, machine);
  return i < 0 ? path : parts.slice(0, i + 1).join('/');
}

/**
 * Removes machine.slice above these cgroup directories once no machine is
 * left in it (rmdir fails while another machine's scope is there: that is
 * fine). The slice is made on demand, so it goes with the last machine.
 */
export function removeEmptyMachineSlices(dirs: readonly string[]): void {
  for (const d of dirs) {
    const parent = d.slice(0, d.lastIndexOf('/'));
    if (!parent.endsWith(`/${MACHINE_SLICE}`)) continue;
    try {
      rmdirSync(parent);
    } catch {}
  }
}

/**
 * The v1 controllers systemd realizes a machine's scope in (besides its own
 * name=systemd hierarchy) with its default accounting: cpuacct
 * (CPUAccounting=, which on a v1 or hybrid host needs it), memory
 * (MemoryAccounting=), pids (TasksAccounting=) and devices (the scope's
 * DevicePolicy=). Not cpu or blkio, which it adds only for a CPU or I/O
 * setting nothing here makes (each hierarchy costs a start ~0.15 ms to make
 * and remove); not cpuset or freezer, v2-only to systemd; never net_cls,
 * perf_event, hugetlb, rdma or misc. A machine's processes stay where they
 * were in the others, as under systemd-machined.
 */
export const SYSTEMD_V1_CONTROLLERS: ReadonlySet<string> = new Set([
  'name=systemd',
  'cpuacct',
  'memory',
  'devices',
  'pids',
]);

/** `layout` with only the v1 hierarchies systemd makes a unit's cgroup in (SYSTEMD_V1_CONTROLLERS). */
export function systemdHierarchies(layout: CgroupLayout): CgroupLayout {
  const hierarchies = layout.hierarchies.filter((h) =>
    h.controllers.some((c) => SYSTEMD_V1_CONTROLLERS.has(c)),
  );
  if (hierarchies.length === layout.hierarchies.length) return layout;
  const controllers: Record<string, string> = {};
  for (const h of hierarchies) for (const c of h.controllers) controllers[c] = h.mountPoint;
  return { ...layout, controllers, hierarchies };
}

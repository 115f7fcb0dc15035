import { Cgroup, type CgroupLayout, isDigits } from '@sd/sys';
import { findMachineScopes, isMachineScopePath, MachineCgroup } from './cgroup.js';
import { type ForbiddenLeaders, LeaderWatch, leaderRefusal, parentPid } from './leader.js';
import { Machine } from './machine.js';
import { MACHINE_CLASSES, type MachineClass } from './names.js';

/**
 * Finding a machine again without its state file (truncated, garbage): by
 * its scope. In machine-NAME.scope the one process whose parent is outside
 * the scope is the leader (the container's init; sd-nspawn itself runs
 * outside). What the file held beyond that (id, service, root) is lost.
 */
export function recoverByScope(
  name: string,
  layout: CgroupLayout,
  forbidden: ForbiddenLeaders,
): { machine: Machine; watch: LeaderWatch } | undefined {
  for (const path of findMachineScopes(name, layout)) {
    let pids: number[];
    try {
      pids = new Cgroup(path, { layout }).pids();
    } catch {
      continue;
    }
    const inside = new Set(pids);
    const tops = pids.filter((p) => !inside.has(parentPid(p) ?? -1));
    if (tops.length !== 1 || leaderRefusal(tops[0]!, forbidden)) continue;
    const leader = tops[0]!;
    const cgroup = MachineCgroup.ofProcess(leader, layout);
    if (!cgroup || !isMachineScopePath(cgroup.mainPath, name)) continue;
    const watch = LeaderWatch.open(leader);
    if (!watch) continue;
    const machine = new Machine({
      name,
      id: Buffer.alloc(16),
      service: '',
      class: 'container',
      leader,
      leaderStartTime: watch.startTime,
      rootDirectory: '',
      netif: [],
      timestamp: BigInt(Date.now()) * 1000n,
      timestampMonotonic: process.hrtime.bigint() / 1000n,
      cgroup,
      scopeOwned: false,
    });
    return { machine, watch };
  }
  return undefined;
}

/** A machine from a well-formed state file whose leader is still the registered process. */
export function machineFromState(
  file: string,
  rec: Record<string, string>,
  watch: LeaderWatch,
  cgroup: MachineCgroup,
): Machine {
  const cls = (MACHINE_CLASSES as readonly string[]).includes(rec.CLASS ?? '')
    ? (rec.CLASS as MachineClass)
    : 'container';
  const num = (v: string | undefined) => (isDigits(v ?? '') ? BigInt(v!) : 0n);
  return new Machine({
    name: file,
    id: /^[0-9a-f]{32}$/.test(rec.ID ?? '') ? Buffer.from(rec.ID!, 'hex') : Buffer.alloc(16),
    service: rec.SERVICE ?? '',
    class: cls === 'host' ? 'container' : cls,
    leader: watch.pid,
    leaderStartTime: watch.startTime,
    rootDirectory: rec.ROOT ?? '',
    netif: (rec.NETIF ?? '').split(/\s+/).filter(Boolean).map(Number).filter(Number.isInteger),
    timestamp: num(rec.REALTIME),
    timestampMonotonic: num(rec.MONOTONIC),
    cgroup,
    scopeOwned: rec.SCOPE_OWNED === 'yes',
  });
}

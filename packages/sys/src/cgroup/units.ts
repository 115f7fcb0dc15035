/**
 * systemd's naming of machine cgroups and a process's place in the cgroup
 * trees: shared knowledge of sd-nspawn (which makes its own scope) and
 * sd-machined (which makes or adopts one).
 */

/** systemd's unit-name escaping: bytes outside [A-Za-z0-9:_.] (and a leading '.') become \xNN. */
export function escapeUnitName(name: string): string {
  let out = '';
  for (const [i, b] of [...Buffer.from(name)].entries()) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9:_]/.test(c) || (c === '.' && i > 0)) out += c;
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The scope systemd-machined would create for a machine: machine-NAME.scope (escaped). */
export function machineScopeName(machine: string): string {
  return `machine-${escapeUnitName(machine)}.scope`;
}

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
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const path = m[3]!.replace(/^\/+|\/+$/g, '');
    if (m[1] === '0' && m[2] === '') unified = path;
    else v1[m[2]!] = path;
  }
  return { unified, v1 };
}

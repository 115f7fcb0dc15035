import { readFileSync } from 'node:fs';
import { CgroupSet, detectCgroups, parseProcCgroup } from '@sd/sys';

/**
 * A cgroup for one run of the reference systemd-nspawn. Without systemd as
 * PID 1, `systemd-nspawn --keep-unit` makes `supervisor` and `payload`
 * cgroups next to its own (a booted guest its init.scope below) and leaves
 * them when it ends: started in this one, they go when it is removed. Only
 * in the hierarchies systemd-nspawn itself uses (unified and name=systemd),
 * below our own cgroup there; the others (memory...) stay as they are.
 */
export class ReferenceCgroup {
  readonly #cg: CgroupSet;

  constructor(tag: string) {
    const layout = detectCgroups();
    this.#cg = CgroupSet.at(
      parseProcCgroup(readFileSync('/proc/self/cgroup', 'utf8')),
      { ...layout, hierarchies: layout.hierarchies.filter((h) => h.controllers.includes('name=systemd')) },
      { below: `sd-bench-ref-${tag}-${process.pid}` },
    );
  }

  /** `cmd args` run inside the cgroup, made now: a shell moves itself in and execs (~1 ms). */
  argv(cmd: string, args: readonly string[]): [string, string[]] {
    this.#cg.create();
    const enter = this.#cg.dirs.map((d) => `echo $$ > '${d}/cgroup.procs'`).join(' && ');
    return ['/bin/sh', ['-c', `${enter} && exec "$@"`, 'sh', cmd, ...args]];
  }

  /** Removes the cgroup with whatever the run left below it. */
  remove(): Promise<void> {
    return this.#cg.remove();
  }
}

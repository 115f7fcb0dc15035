import { machineScopePath, systemdHierarchies } from '@sd/basic';
import { Cgroup, type CgroupLayout, detectCgroups, SdError } from '@sd/sys';
import { MachineCgroup } from './cgroup.js';

/**
 * Where CreateMachine's scope comes from. On a host whose PID 1 is systemd
 * the scope must be systemd's own (StartTransientUnit on
 * org.freedesktop.systemd1 with the caller's scope properties and the
 * leader in PIDs): a systemd backend is the hook for that. Everywhere else
 * — and in every test here — machined makes machine.slice/NAME.scope on
 * cgroupfs itself, in the hierarchies systemd manages (systemdHierarchies),
 * and removes it when the machine goes.
 */
export interface ScopeBackend {
  readonly kind: 'cgroupfs' | 'systemd';
  /** Creates the machine's scope and moves `leader` into it. */
  createScope(
    machine: string,
    leader: number,
    properties: ReadonlyArray<[string, unknown]>,
  ): Promise<MachineCgroup>;
}

export class CgroupfsScopeBackend implements ScopeBackend {
  readonly kind = 'cgroupfs';
  readonly layout: CgroupLayout;

  constructor(layout: CgroupLayout = detectCgroups()) {
    this.layout = systemdHierarchies(layout);
  }

  async createScope(machine: string, leader: number): Promise<MachineCgroup> {
    const path = machineScopePath(machine);
    const cg = new Cgroup(path, { layout: this.layout });
    if (cg.exists() && !cg.isEmpty())
      throw new SdError('EBUSY', `The cgroup ${path} of machine '${machine}' has processes in it already`);
    cg.create();
    try {
      cg.attach(leader);
    } catch (e) {
      await cg.remove().catch(() => undefined);
      throw e;
    }
    return new MachineCgroup([cg], path);
  }
}

/** The hook for a systemd host: not implemented here (no systemd PID 1 to test against). */
export class SystemdScopeBackend implements ScopeBackend {
  readonly kind = 'systemd';
  async createScope(machine: string): Promise<MachineCgroup> {
    throw new SdError(
      'EOPNOTSUPP',
      `Creating the scope of '${machine}' through systemd (StartTransientUnit) is not implemented yet`,
    );
  }
}

/** Whether this host runs systemd as PID 1: @sd/basic's. */
export { systemdBooted } from '@sd/basic';

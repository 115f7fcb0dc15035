import { EventEmitter } from 'node:events';
import {
  Cgroup,
  type CgroupLayout,
  closeQuietly,
  detectCgroups,
  InvalidArgumentError,
  pidfdSendSignal,
  SdError,
  SIG,
} from '@sd/sys';
import { isMachineScopePath, isMachineUnitPath, MachineCgroup } from './cgroup.js';
import { type ForbiddenLeaders, LeaderWatch, leaderRefusal } from './leader.js';
import { Machine } from './machine.js';
import { assertValidMachineName, MACHINE_CLASSES, type MachineClass } from './names.js';
import { machineFromState, recoverByScope } from './recover.js';
import { CgroupfsScopeBackend, type ScopeBackend } from './scope.js';
import { StateStore } from './state.js';

/** What a manager passes to CreateMachine / RegisterMachine. */
export interface MachineRequest {
  name: string;
  /** 0 or 16 bytes. */
  id: Buffer | Uint8Array | number[];
  service: string;
  /** 'container', 'vm' or '' (unknown). */
  class: string;
  leader: number;
  rootDirectory: string;
  netif?: number[];
  scopeProperties?: Array<[string, unknown]>;
}

export interface RegistryEvents {
  machineNew: [machine: Machine];
  machineRemoved: [machine: Machine];
  /** Terminate was asked for: what runs for the machine (copies) should stop. */
  machineClosing: [machine: Machine];
  /** Something went wrong in the background (a cgroup that would not go away...). */
  warning: [message: string, error?: unknown];
}

export interface RegistryOptions {
  /** Where state files go (Paths.machinesStateDir). */
  stateDir: string;
  /** How CreateMachine makes scopes; cgroupfs by default. */
  scopes?: ScopeBackend;
  layout?: CgroupLayout;
  /** How long Terminate waits after SIGTERM before SIGKILL (systemd's TimeoutStopSec: 90 s). */
  terminateTimeoutMs?: number;
}

/** What load() found in the state directory. */
export interface LoadReport {
  restored: string[];
  /** Machines whose file was unusable but that were found again by their scope. */
  recovered: string[];
  /** Files not used, with the reason; they are left where they are. */
  skipped: Array<{ file: string; reason: string }>;
  /** Machines of a previous run whose leader has exited: their state file is removed. */
  ended: string[];
}

export class MachineExistsError extends SdError {
  constructor(name: string) {
    super('EEXIST', `Machine '${name}' already exists`);
  }
}

/**
 * The machines: registration, the leader's pidfd watch, state files, and
 * the end of a machine (leader exit, Terminate, Unregister). Emits
 * machineNew and machineRemoved; never prints.
 */
export class Registry extends EventEmitter<RegistryEvents> {
  readonly #machines = new Map<string, Machine>();
  readonly #watches = new Map<Machine, LeaderWatch>();
  readonly #killTimers = new Map<Machine, NodeJS.Timeout>();
  readonly #store: StateStore;
  readonly #scopes: ScopeBackend;
  readonly #layout: CgroupLayout;
  readonly #terminateTimeoutMs: number;
  /** Processes no machine may have as leader (the bus daemon, once known). */
  readonly forbidden: ForbiddenLeaders = {};
  /** What the last load() found. */
  lastLoad: LoadReport = { restored: [], recovered: [], skipped: [], ended: [] };

  constructor(opts: RegistryOptions) {
    super();
    this.#store = new StateStore(opts.stateDir);
    this.#layout = opts.layout ?? detectCgroups();
    this.#scopes = opts.scopes ?? new CgroupfsScopeBackend(this.#layout);
    this.#terminateTimeoutMs = opts.terminateTimeoutMs ?? 90_000;
  }

  get(name: string): Machine | undefined {
    return this.#machines.get(name);
  }

  list(): Machine[] {
    return [...this.#machines.values()];
  }

  /** The machine `pid` belongs to: as its leader, or as a process in its cgroup. */
  byPid(pid: number): Machine | undefined {
    for (const m of this.#machines.values()) if (m.leader === pid) return m;
    for (const m of this.#machines.values()) if (m.cgroup?.contains(pid)) return m;
    return undefined;
  }

  /**
   * Registers a machine. 'create' makes its scope (CreateMachine), 'register'
   * takes the cgroup the leader is in (RegisterMachine).
   */
  async add(req: MachineRequest, mode: 'create' | 'register'): Promise<Machine> {
    const name = assertValidMachineName(req.name);
    if (name === '.host') throw new InvalidArgumentError(`Invalid machine name: ".host" is the host`);
    let cls: MachineClass = 'container';
    if (req.class !== '') {
      if (!(MACHINE_CLASSES as readonly string[]).includes(req.class) || req.class === 'host')
        throw new InvalidArgumentError(`Invalid machine class parameter: ${JSON.stringify(req.class)}`);
      cls = req.class as MachineClass;
    }
    const idBytes = Buffer.from(req.id as Uint8Array);
    if (idBytes.length !== 0 && idBytes.length !== 16)
      throw new InvalidArgumentError('Invalid machine ID: must be 0 or 16 bytes');
    if (req.rootDirectory !== '' && !req.rootDirectory.startsWith('/'))
      throw new InvalidArgumentError(
        `Root directory must be empty or an absolute path: ${JSON.stringify(req.rootDirectory)}`,
      );
    for (const i of req.netif ?? [])
      if (!Number.isInteger(i) || i <= 0)
        throw new InvalidArgumentError(`Invalid network interface index ${i}`);
    const refusal = leaderRefusal(req.leader, this.forbidden);
    if (refusal) throw new InvalidArgumentError(refusal);
    if (this.#machines.has(name)) throw new MachineExistsError(name);
    if (this.byPid(req.leader)?.leader === req.leader)
      throw new SdError(
        'EBUSY',
        `Leader PID ${req.leader} already belongs to machine '${this.byPid(req.leader)?.name}'`,
      );

    const watch = LeaderWatch.open(req.leader);
    if (!watch) throw new SdError('ESRCH', `Leader PID ${req.leader} does not exist`);
    let cgroup: MachineCgroup | undefined;
    try {
      cgroup =
        mode === 'create'
          ? await this.#scopes.createScope(name, req.leader, req.scopeProperties ?? [])
          : this.#registeredCgroup(name, req.leader);
    } catch (e) {
      watch.close();
      throw e;
    }
    const m = new Machine({
      name,
      id: idBytes.length === 16 ? idBytes : Buffer.alloc(16),
      service: req.service,
      class: cls,
      leader: req.leader,
      leaderStartTime: watch.startTime,
      rootDirectory: req.rootDirectory,
      netif: req.netif ?? [],
      timestamp: BigInt(Date.now()) * 1000n,
      timestampMonotonic: process.hrtime.bigint() / 1000n,
      cgroup,
      scopeOwned: mode === 'create',
    });
    // A race: the name may have been taken while the scope was made.
    if (this.#machines.has(name)) {
      watch.close();
      if (m.scopeOwned) await cgroup?.destroy().catch(() => undefined);
      throw new MachineExistsError(name);
    }
    this.#machines.set(name, m);
    this.#watch(m, watch);
    m.state = 'running';
    this.#save(m);
    this.emit('machineNew', m);
    return m;
  }

  /**
   * Finds the machines of a previous run in the state directory. A machine
   * whose leader is still the process that was registered is back; one
   * whose leader has exited is dropped (and its own scope removed). A file
   * that cannot be used (a link, a FIFO, garbage, truncated, too big) is
   * reported in lastLoad and left alone — and when a scope named for that
   * machine still holds a process tree, the machine is found again from it.
   */
  async load(): Promise<LoadReport> {
    const report: LoadReport = { restored: [], recovered: [], skipped: [], ended: [] };
    for (const entry of this.#store.loadAll()) {
      const { file } = entry;
      if (entry.problem !== undefined) {
        if (this.#recover(file)) report.recovered.push(file);
        else report.skipped.push({ file, reason: entry.problem });
        continue;
      }
      const rec = entry.fields;
      const leader = Number(rec.LEADER);
      const owned = rec.SCOPE_OWNED === 'yes';
      const problem = this.#restoreProblem(file, rec);
      if (problem) {
        report.skipped.push({ file, reason: problem });
        continue;
      }
      const watch = LeaderWatch.open(leader, BigInt(rec.LEADER_STARTTIME!));
      if (!watch) {
        // The machine ended while we were away: what it left is ours to clean.
        report.ended.push(file);
        this.#store.remove(file);
        if (owned && rec.CGROUP)
          await this.#ownedCgroup(rec.CGROUP)
            ?.destroy()
            .catch((e) => this.emit('warning', `Failed to remove the cgroup of ${file}`, e));
        continue;
      }
      const cgroup = owned
        ? this.#ownedCgroup(rec.CGROUP!)
        : MachineCgroup.ofMachineLeader(leader, file, this.#layout);
      if (!cgroup || !isMachineUnitPath(cgroup.mainPath, file)) {
        watch.close();
        report.skipped.push({ file, reason: `leader ${leader} is not in the machine's scope` });
        continue;
      }
      const m = machineFromState(file, rec, watch, cgroup);
      m.state = rec.STATE === 'closing' ? 'closing' : 'running';
      this.#machines.set(file, m);
      this.#watch(m, watch);
      this.#save(m);
      report.restored.push(file);
    }
    this.lastLoad = report;
    return report;
  }

  /** Why a well-formed state file may still not become a machine. */
  #restoreProblem(file: string, rec: Record<string, string>): string | undefined {
    try {
      assertValidMachineName(file);
    } catch {
      return 'not a valid machine name';
    }
    if (this.#machines.has(file)) return 'a machine of that name exists';
    const refusal = leaderRefusal(Number(rec.LEADER), this.forbidden);
    if (refusal) return refusal;
    if (rec.SCOPE_OWNED === 'yes' && !(rec.CGROUP && isMachineScopePath(rec.CGROUP, file)))
      return `cgroup ${JSON.stringify(rec.CGROUP ?? '')} is not the machine's scope`;
    return undefined;
  }

  /**
   * A machine whose state file was unusable, found again by its scope: the
   * one process in machine-NAME.scope whose parent is outside it is the
   * leader (the container's init). Registered as a manager's machine (not
   * owned): we do not know that we made the scope.
   */
  #recover(file: string): boolean {
    try {
      assertValidMachineName(file);
    } catch {
      return false;
    }
    if (file === '.host' || this.#machines.has(file)) return false;
    const found = recoverByScope(file, this.#layout, this.forbidden);
    if (!found) return false;
    found.machine.state = 'running';
    this.#machines.set(file, found.machine);
    this.#watch(found.machine, found.watch);
    this.#save(found.machine);
    return true;
  }

  /** Sends a signal to the leader or to every process of the machine. */
  async kill(m: Machine, whom: string, signal: number): Promise<void> {
    if (whom !== '' && whom !== 'leader' && whom !== 'all')
      throw new InvalidArgumentError(`Invalid kill parameter '${whom}'`);
    if (!Number.isInteger(signal) || signal <= 0 || signal > 64)
      throw new InvalidArgumentError(`Invalid signal ${signal}`);
    if (m.class === 'host') throw new SdError('EOPNOTSUPP', 'Refusing to kill the host');
    if (whom === 'leader' || !m.cgroup) {
      const fd = m.openLeaderPidfd();
      try {
        pidfdSendSignal(fd, signal);
      } finally {
        closeQuietly(fd);
      }
      return;
    }
    await m.cgroup.kill(signal);
  }

  /**
   * Stops a machine as systemd stops its scope: SIGTERM (and SIGCONT) to
   * every process, SIGKILL to what is left after the timeout. Returns once
   * the signals are sent; the machine goes when its leader has exited.
   */
  async terminate(m: Machine): Promise<void> {
    if (m.class === 'host') throw new SdError('EOPNOTSUPP', 'Refusing to terminate the host');
    m.state = 'closing';
    this.#save(m);
    this.emit('machineClosing', m);
    if (m.cgroup && !m.cgroup.isEmpty()) {
      await m.cgroup.kill(SIG.TERM);
      await m.cgroup.kill(SIG.CONT).catch(() => undefined);
    } else {
      const fd = m.openLeaderPidfd();
      try {
        pidfdSendSignal(fd, SIG.TERM);
      } finally {
        closeQuietly(fd);
      }
    }
    if (!this.#killTimers.has(m)) {
      const t = setTimeout(() => {
        this.#killTimers.delete(m);
        if (this.#machines.get(m.name) !== m) return;
        this.#killAll(m).catch((e) => this.emit('warning', `Failed to kill machine ${m.name}`, e));
      }, this.#terminateTimeoutMs);
      t.unref();
      this.#killTimers.set(m, t);
    }
  }

  /** Forgets a machine without stopping it (UnregisterMachine). */
  async unregister(m: Machine): Promise<void> {
    if (m.class === 'host') throw new SdError('EOPNOTSUPP', 'Refusing to unregister the host');
    await this.#finish(m, false);
  }

  /** Stops watching (daemon shutdown): machines stay registered in the state files. */
  close(): void {
    for (const w of this.#watches.values()) w.close();
    this.#watches.clear();
    for (const t of this.#killTimers.values()) clearTimeout(t);
    this.#killTimers.clear();
    this.#machines.clear();
  }

  /**
   * RegisterMachine's cgroup: the leader's own, which must be the machine's
   * scope (machine.slice/machine-NAME.scope, made by sd-nspawn or systemd
   * for it): Terminate signals every process in it, so a leader in the
   * root, a session or a service would take its neighbours along.
   */
  #registeredCgroup(name: string, leader: number): MachineCgroup | undefined {
    const cg = MachineCgroup.ofMachineLeader(leader, name, this.#layout);
    if (!cg)
      throw new InvalidArgumentError(
        `Leader PID ${leader} is not in a scope of machine '${name}' (cgroup ${JSON.stringify(MachineCgroup.ofProcess(leader, this.#layout)?.mainPath ?? '/')}): refusing to register it`,
      );
    return cg;
  }

  #ownedCgroup(path: string): MachineCgroup | undefined {
    try {
      return new MachineCgroup([new Cgroup(path, { layout: this.#layout })], path);
    } catch {
      return undefined;
    }
  }

  async #killAll(m: Machine): Promise<void> {
    if (m.cgroup && !m.cgroup.isEmpty()) await m.cgroup.kill(SIG.KILL);
    else {
      const fd = m.openLeaderPidfd();
      try {
        pidfdSendSignal(fd, SIG.KILL);
      } finally {
        closeQuietly(fd);
      }
    }
  }

  #watch(m: Machine, watch: LeaderWatch): void {
    this.#watches.set(m, watch);
    watch.watch(() => {
      this.#finish(m, true).catch((e) => this.emit('warning', `Failed to clean up machine ${m.name}`, e));
    });
  }

  async #finish(m: Machine, leaderGone: boolean): Promise<void> {
    if (this.#machines.get(m.name) !== m) return;
    m.state = 'closing';
    this.#watches.get(m)?.close();
    this.#watches.delete(m);
    const t = this.#killTimers.get(m);
    if (t) clearTimeout(t);
    this.#killTimers.delete(m);
    if (leaderGone && m.cgroup && (m.scopeOwned || isMachineScopePath(m.cgroup.mainPath, m.name))) {
      try {
        // Our own scope goes with what is left in it; a manager's (sd-nspawn
        // killed with SIGKILL) only once it is empty, never killing in it.
        if (m.scopeOwned) await m.cgroup.destroy();
        else await m.cgroup.remove(5000);
      } catch (e) {
        this.emit('warning', `Failed to remove the cgroup of machine ${m.name}`, e);
      }
    }
    this.#machines.delete(m.name);
    this.#store.remove(m.name);
    this.emit('machineRemoved', m);
  }

  #save(m: Machine): void {
    try {
      this.#store.save(m.toRecord());
    } catch (e) {
      this.emit('warning', `Failed to save the state of machine ${m.name}`, e);
    }
  }
}

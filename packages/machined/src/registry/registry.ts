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
import { MachineCgroup } from './cgroup.js';
import { LeaderWatch } from './leader.js';
import { Machine } from './machine.js';
import { assertValidMachineName, MACHINE_CLASSES, type MachineClass } from './names.js';
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
    if (!Number.isInteger(req.leader) || req.leader <= 1)
      throw new InvalidArgumentError(`Invalid leader PID ${req.leader}`);
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
          : MachineCgroup.ofProcess(req.leader, this.#layout);
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

  /** Finds the machines of a previous run in the state directory; dead ones are dropped. */
  async load(): Promise<void> {
    for (const [file, rec] of this.#store.loadAll()) {
      const leader = Number(rec.LEADER);
      const start = rec.LEADER_STARTTIME ? BigInt(rec.LEADER_STARTTIME) : undefined;
      const owned = rec.SCOPE_OWNED === 'yes';
      const ownCgroup = owned && rec.CGROUP ? this.#ownedCgroup(rec.CGROUP) : undefined;
      const watch = Number.isInteger(leader) && leader > 1 ? LeaderWatch.open(leader, start) : undefined;
      if (!watch || rec.NAME !== file || this.#machines.has(file)) {
        watch?.close();
        this.#store.remove(file);
        await ownCgroup
          ?.destroy()
          .catch((e) => this.emit('warning', `Failed to remove the cgroup of ${file}`, e));
        continue;
      }
      const cls = (MACHINE_CLASSES as readonly string[]).includes(rec.CLASS ?? '')
        ? (rec.CLASS as MachineClass)
        : 'container';
      const m = new Machine({
        name: file,
        id: /^[0-9a-f]{32}$/.test(rec.ID ?? '') ? Buffer.from(rec.ID!, 'hex') : Buffer.alloc(16),
        service: rec.SERVICE ?? '',
        class: cls,
        leader,
        leaderStartTime: watch.startTime,
        rootDirectory: rec.ROOT ?? '',
        netif: (rec.NETIF ?? '').split(/\s+/).filter(Boolean).map(Number).filter(Number.isInteger),
        timestamp: BigInt(rec.REALTIME ?? '0'),
        timestampMonotonic: BigInt(rec.MONOTONIC ?? '0'),
        cgroup: ownCgroup ?? MachineCgroup.ofProcess(leader, this.#layout),
        scopeOwned: owned,
      });
      m.state = rec.STATE === 'closing' ? 'closing' : 'running';
      this.#machines.set(file, m);
      this.#watch(m, watch);
      this.#save(m);
    }
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
    if (leaderGone && m.scopeOwned && m.cgroup) {
      try {
        await m.cgroup.destroy();
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

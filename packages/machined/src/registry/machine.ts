import { closeQuietly, pidfdOpen, SdError } from '@sd/sys';
import { machineObjectPath } from '../bus-label.js';
import type { MachineCgroup } from './cgroup.js';
import { processStartTime } from './leader.js';
import type { MachineClass } from './names.js';
import type { MachineStateRecord } from './state.js';

export type MachineState = 'opening' | 'running' | 'closing';

export interface MachineInit {
  name: string;
  /** 16 bytes (all zero when unknown). */
  id: Buffer;
  service: string;
  class: MachineClass;
  leader: number;
  leaderStartTime: bigint | undefined;
  rootDirectory: string;
  netif: number[];
  /** Realtime and monotonic clocks at registration, in µs. */
  timestamp: bigint;
  timestampMonotonic: bigint;
  cgroup: MachineCgroup | undefined;
  /** Whether machined made the cgroup (CreateMachine) and removes it with the machine. */
  scopeOwned: boolean;
}

/** One registered machine: what ListMachines and the Machine object show. */
export class Machine implements MachineInit {
  readonly name: string;
  readonly id: Buffer;
  readonly service: string;
  readonly class: MachineClass;
  readonly leader: number;
  readonly leaderStartTime: bigint | undefined;
  readonly rootDirectory: string;
  readonly netif: number[];
  readonly timestamp: bigint;
  readonly timestampMonotonic: bigint;
  cgroup: MachineCgroup | undefined;
  scopeOwned: boolean;
  state: MachineState = 'opening';

  constructor(init: MachineInit) {
    this.name = init.name;
    this.id = init.id;
    this.service = init.service;
    this.class = init.class;
    this.leader = init.leader;
    this.leaderStartTime = init.leaderStartTime;
    this.rootDirectory = init.rootDirectory;
    this.netif = init.netif;
    this.timestamp = init.timestamp;
    this.timestampMonotonic = init.timestampMonotonic;
    this.cgroup = init.cgroup;
    this.scopeOwned = init.scopeOwned;
  }

  get objectPath(): string {
    return machineObjectPath(this.name);
  }

  /** The unit, as systemd reports it: the scope or service the machine's processes are in. */
  get unit(): string {
    return this.cgroup?.unit ?? '';
  }

  /**
   * A new pidfd of the leader, checked against the start time recorded at
   * registration (a recycled pid is not the machine). The caller closes it.
   */
  openLeaderPidfd(): number {
    let fd: number;
    try {
      fd = pidfdOpen(this.leader);
    } catch (e) {
      throw new SdError('ESRCH', `The leader of machine '${this.name}' (pid ${this.leader}) is gone`, {
        cause: e,
      });
    }
    const start = processStartTime(this.leader);
    if (start === undefined || (this.leaderStartTime !== undefined && start !== this.leaderStartTime)) {
      closeQuietly(fd);
      throw new SdError('ESRCH', `The leader of machine '${this.name}' (pid ${this.leader}) is gone`);
    }
    return fd;
  }

  toRecord(): MachineStateRecord {
    const rec: MachineStateRecord = {
      NAME: this.name,
      SCOPE: this.unit,
      SERVICE: this.service,
      ROOT: this.rootDirectory,
      ID: this.id.toString('hex'),
      LEADER: String(this.leader),
      CLASS: this.class,
      REALTIME: String(this.timestamp),
      MONOTONIC: String(this.timestampMonotonic),
      NETIF: this.netif.join(' '),
      SCOPE_OWNED: this.scopeOwned ? 'yes' : 'no',
      STATE: this.state,
    };
    if (this.leaderStartTime !== undefined) rec.LEADER_STARTTIME = String(this.leaderStartTime);
    if (this.cgroup) rec.CGROUP = this.cgroup.mainPath;
    return rec;
  }
}

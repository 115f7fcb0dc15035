import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { machineScopeName, machineScopePath, removeEmptyMachineSlices, systemdHierarchies } from '@sd/basic';
import {
  applyDevicePolicyV1,
  applyDevicePolicyV2,
  type CgroupLayout,
  CgroupSet,
  closeQuietly,
  type DeviceRule,
  detectCgroups,
  NSPAWN_DEVICE_ALLOW,
  O,
  open,
  parseProcCgroup,
  SIG,
} from '@sd/sys';
import { NspawnError } from '../errors.js';

/**
 * The container's own cgroup, machine.slice/machine-NAME.scope as machined
 * names it, in the unified hierarchy and the v1 ones systemd manages
 * (systemdHierarchies: those systemd's default accounting and device
 * policy use, not cpuset, freezer, cpu or blkio, whose setup would cost a
 * start for nothing systemd would give). Each hierarchy's scope is placed
 * below the cgroup the supervisor itself runs in there (at the root on a
 * plain host), so that limits someone put on the supervisor keep covering
 * its containers. The payload is attached while it waits before its setup;
 * it then unshares its cgroup namespace, so it sees the scope as its root.
 */

/** The scope of a machine: machine-NAME.scope, escaped as systemd does. */
export const scopeName = machineScopeName;

/** The files of a cgroup directory the container's root must own to manage it (as systemd-nspawn chowns them). */
const DELEGATED_FILES = [
  '.',
  'cgroup.procs',
  'cgroup.threads',
  'cgroup.subtree_control',
  'cgroup.events',
  'cgroup.stat',
  'cgroup.controllers',
  'memory.oom.group',
  'memory.reclaim',
];

export class ContainerScope {
  readonly name: string;
  /** One Cgroup per distinct parent path; the first holds the unified hierarchy when there is one. */
  readonly #set: CgroupSet;
  #created = false;
  /** The v1 devices cgroup the payload joins, below the scope that holds the policy. */
  #devicesPayload: string | undefined;

  constructor(machine: string, layout: CgroupLayout = detectCgroups(), ownCgroups?: string) {
    this.name = scopeName(machine);
    const own = parseProcCgroup(ownCgroups ?? readFileSync('/proc/self/cgroup', 'utf8'));
    this.#set = CgroupSet.at(own, systemdHierarchies(layout), { below: machineScopePath(machine) });
  }

  /** Every directory of the scope, unified first. */
  get dirs(): string[] {
    return this.#set.dirs;
  }

  get unifiedDir(): string | undefined {
    return this.#set.unifiedDir;
  }

  /**
   * Creates the scope everywhere. A scope left behind by a container that is
   * gone is removed first; one with processes in it means the machine runs.
   */
  async create(): Promise<void> {
    // Looked at without exceptions: on a host without machines none of these exists,
    // and a thrown ENOENT per hierarchy cost a start ~0.5 ms.
    for (const slice of new Set(this.dirs.map(dirname)))
      if (existsSync(slice)) pruneStaleScopes(slice, this.name);
    for (const g of this.#set.groups) {
      if (!g.dirs.some((d) => existsSync(`${d}/cgroup.procs`))) continue;
      if (!g.isEmpty())
        throw new NspawnError(
          'EBUSY',
          `A machine with the cgroup ${g.path} is already running (processes ${g.pids().join(' ')})`,
        );
      await g.remove();
    }
    this.#created = true;
    for (let attempt = 1; ; attempt++) {
      try {
        this.#set.create();
        return;
      } catch (e) {
        // ENOENT: another container's exit removed an empty machine.slice under us; try again.
        const again = attempt < 5 && (e as { code?: string }).code === 'ENOENT';
        if (again) continue;
        await this.destroy();
        throw new NspawnError('EIO', `Failed to create the container's cgroup ${this.name}`, { cause: e });
      }
    }
  }

  /**
   * Closes the scope's device policy: only `rules` may be opened or made
   * (NSPAWN_DEVICE_ALLOW: systemd's DevicePolicy=closed and nspawn's
   * DeviceAllow=). On cgroup v2 a device program on the scope; on v1 the
   * devices controller, whose payload cgroup is a child of the scope: root
   * in the container (CAP_SYS_ADMIN) may write devices.allow of its own
   * cgroup root, but a child can never allow what its parent denies.
   * On a hybrid host the v1 controller alone, as systemd does (it attaches
   * device programs only on a fully unified host): it governs every task of
   * the scope wherever it is in the unified tree, and the container cannot
   * leave its v1 cgroup (above its cgroup namespace root) nor attach a
   * program of its own (CAP_BPF of the host's user namespace); a program
   * beside it would only cost a start its load and verification (~0.7 ms).
   * Call after create(), before openJoin().
   */
  restrictDevices(rules: readonly DeviceRule[] = NSPAWN_DEVICE_ALLOW): void {
    try {
      const v1 = this.#set.groups.some((g) => g.v1Dir('devices') !== undefined);
      for (const g of this.#set.groups) {
        const dir = g.v1Dir('devices');
        if (dir !== undefined) {
          applyDevicePolicyV1(dir, rules);
          mkdirSync(`${dir}/payload`);
          this.#devicesPayload = `${dir}/payload`;
        }
        const unified = g.unifiedDir;
        if (unified !== undefined && !v1) applyDevicePolicyV2(unified, rules);
      }
    } catch (e) {
      throw new NspawnError(
        'EIO',
        `Failed to set the device policy of ${this.name}: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
  }

  /**
   * How a child joins the scope at its start, without a move by pid (which
   * waits for an RCU grace period, 10-25 ms here, before anything else the
   * start does): the unified scope as a CLONE_INTO_CGROUP fd, and each v1
   * hierarchy's `tasks` file (the devices one below the policy), to which
   * the child writes "0", itself, as its first step; the kernel moves a
   * task that moves itself at once. Its forks inherit the scope. Call after
   * restrictDevices(); close the fds once the child runs.
   */
  openJoin(): { cgroupFd: number | undefined; tasksFds: Array<{ fd: number; dir: string }> } {
    const fds: number[] = [];
    try {
      const unified = this.unifiedDir;
      const cgroupFd = unified === undefined ? undefined : open(unified, O.RDONLY | O.DIRECTORY);
      if (cgroupFd !== undefined) fds.push(cgroupFd);
      const tasksFds: Array<{ fd: number; dir: string }> = [];
      for (const g of this.#set.groups)
        for (const dir of g.dirs) {
          if (dir === g.unifiedDir) continue;
          const at = dir === g.v1Dir('devices') && this.#devicesPayload ? this.#devicesPayload : dir;
          const fd = open(`${at}/tasks`, O.WRONLY);
          fds.push(fd);
          tasksFds.push({ fd, dir: at });
        }
      return { cgroupFd, tasksFds };
    } catch (e) {
      closeQuietly(...fds);
      throw new NspawnError('EIO', `Failed to open the cgroup ${this.name}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  /** Hands the unified scope to the container's root user (with --private-users). */
  delegate(uid: number, gid: number = uid): void {
    const dir = this.unifiedDir;
    if (dir === undefined) return;
    for (const f of DELEGATED_FILES) {
      const path = f === '.' ? dir : `${dir}/${f}`;
      // memory.* exist only where the memory controller is on (not in a hybrid host's unified tree).
      if (f.startsWith('memory.') && !existsSync(path)) continue;
      chownSync(path, uid, gid);
    }
  }

  /** Kills whatever is left in the scope and removes it from every hierarchy. Safe to call twice. */
  async destroy(): Promise<void> {
    if (!this.#created) return;
    this.#created = false;
    try {
      // The payload's devices cgroup first: an empty scope then goes by rmdir alone, without a walk.
      if (this.#devicesPayload !== undefined)
        try {
          rmdirSync(this.#devicesPayload);
        } catch {}
      await this.#set.destroy(SIG.KILL);
    } finally {
      removeEmptyMachineSlices(this.#set.dirs);
    }
  }
}

/**
 * Removes the empty scopes that killed sd-nspawns left in machine.slice (an
 * empty scope is a machine that is gone). Only where systemd does not own
 * the tree, and only scopes older than a minute, so that one being set up
 * right now (made, not yet joined by its container) is left alone.
 */
export function pruneStaleScopes(slice: string, except: string, now = Date.now()): string[] {
  if (existsSync('/run/systemd/system')) return [];
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(slice);
  } catch {
    return removed;
  }
  for (const name of entries) {
    if (name === except || !/^machine-.+\.scope$/.test(name)) continue;
    const dir = `${slice}/${name}`;
    try {
      if (now - statSync(dir).ctimeMs < 60_000) continue;
      if (removeEmptyCgroup(dir)) removed.push(dir);
    } catch {}
  }
  return removed;
}

/** rmdir of a cgroup and its children, leaves first; false as soon as one holds a process. */
function removeEmptyCgroup(dir: string): boolean {
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory() && !removeEmptyCgroup(`${dir}/${e.name}`)) return false;
  if (readFileSync(`${dir}/cgroup.procs`, 'utf8').trim() !== '') return false;
  try {
    rmdirSync(dir);
    return true;
  } catch {
    return false;
  }
}

// A cgroup handle across every mounted hierarchy, on plain cgroupfs (no systemd).

import { type Dirent, existsSync, readdirSync } from 'node:fs';
import { O, SIG } from '../constants.js';
import { SdError, SyscallError } from '../errors.js';
import { open } from '../fd/fd.js';
import { sleep } from '../loop/sleep.js';
import { type CgroupLayout, detectCgroups } from './detect.js';
import { findFreezer, freeze, thaw } from './freeze.js';
import {
  EBUSY,
  ENOENT,
  mkdirOnce,
  readPids,
  readText,
  readTextIfExists,
  rmdirErrno,
  writeText,
} from './fs.js';
import { controllerOf, findKnob, formatValue, type LimitValue, v1ValueToV2 } from './limits.js';
import { validateCgroupPath } from './path.js';

export type { CgroupHierarchy, CgroupLayout, CgroupMode } from './detect.js';
export { CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, detectCgroups, layoutFromMountinfo } from './detect.js';
export type { LimitValue } from './limits.js';
export { validateCgroupPath } from './path.js';

export interface CgroupOptions {
  /** The hierarchies to use; detectCgroups() by default. */
  layout?: CgroupLayout;
}

export interface WaitOptions {
  /** How long to wait for the cgroup to empty (ms). */
  timeoutMs?: number;
}

/** Where one hierarchy keeps this cgroup. */
interface Place {
  /** The hierarchy's mount point. */
  root: string;
  /** root + '/' + path */
  dir: string;
  unified: boolean;
  controllers: string[];
}

/**
 * One cgroup, named by its path relative to the hierarchy roots (e.g.
 * 'machine.slice/machine-foo.scope'), in the unified hierarchy and in every
 * v1 hierarchy: processes are attached everywhere so that every controller
 * and the freezer see them.
 */
export class Cgroup {
  readonly path: string;
  readonly layout: CgroupLayout;
  readonly #places: Place[];

  constructor(path: string, opts: CgroupOptions = {}) {
    this.path = validateCgroupPath(path);
    this.layout = opts.layout ?? detectCgroups();
    this.#places = [];
    if (this.layout.unifiedRoot !== undefined) {
      const root = this.layout.unifiedRoot;
      this.#places.push({ root, dir: `${root}/${this.path}`, unified: true, controllers: [] });
    }
    if (this.layout.mode !== 'v2') {
      for (const h of this.layout.hierarchies) {
        this.#places.push({
          root: h.mountPoint,
          dir: `${h.mountPoint}/${this.path}`,
          unified: false,
          controllers: h.controllers,
        });
      }
    }
  }

  /** The directories of this cgroup, one per hierarchy (unified first). */
  get dirs(): string[] {
    return this.#places.map((p) => p.dir);
  }

  /** The directory in the unified hierarchy, if there is one. */
  get unifiedDir(): string | undefined {
    return this.#places.find((p) => p.unified)?.dir;
  }

  /** The directory in the v1 hierarchy of `controller`, if it is mounted. */
  v1Dir(controller: string): string | undefined {
    return this.#places.find((p) => !p.unified && p.controllers.includes(controller))?.dir;
  }

  /** Whether the cgroup exists in every hierarchy. */
  exists(): boolean {
    return this.#places.every((p) => readTextIfExists(`${p.dir}/cgroup.procs`) !== undefined);
  }

  /** mkdir -p in every hierarchy; on failure removes what this call created. */
  create(): this {
    const made: string[] = [];
    try {
      for (const p of this.#places) {
        let dir = p.root;
        for (const seg of this.path.split('/')) {
          const parent = dir;
          dir = `${dir}/${seg}`;
          if (mkdirOnce(dir)) made.push(dir);
          // v1 cpuset starts with empty cpus/mems, which refuses every task: inherit the
          // parent's. Also for a directory that exists: another process may have made it
          // a moment ago and not filled it in yet.
          if (p.controllers.includes('cpuset')) inheritCpuset(parent, dir);
        }
      }
    } catch (err) {
      for (const dir of made.reverse()) rmdirErrno(dir);
      throw err;
    }
    return this;
  }

  /** Moves a process (all its threads) into this cgroup in every hierarchy. */
  attach(pid: number): void {
    if (!Number.isInteger(pid) || pid <= 0) throw new SdError('EINVAL', `attach: invalid pid ${pid}`);
    for (const p of this.#places) writeText(`${p.dir}/cgroup.procs`, `${pid}\n`);
  }

  /** The processes in this cgroup (and, by default, its descendants), across all hierarchies. */
  pids(recursive = true): number[] {
    const out = new Set<number>();
    for (const p of this.#places) {
      for (const dir of recursive ? subtree(p.dir) : [p.dir]) {
        for (const pid of readPids(`${dir}/cgroup.procs`)) out.add(pid);
      }
    }
    return [...out].sort((a, b) => a - b);
  }

  /** Whether no process is left in the cgroup or below it. */
  isEmpty(): boolean {
    return this.pids().length === 0;
  }

  /**
   * Sends `signal` to every process in the cgroup and its descendants. SIGKILL
   * uses v2's cgroup.kill when available and waits until the cgroup is empty;
   * otherwise the cgroup is frozen while pids are listed and signalled, again
   * until no process appears that was not signalled yet. Returns how many
   * processes were signalled.
   */
  async kill(signal: number = SIG.KILL, opts: WaitOptions = {}): Promise<number> {
    const deadline = Date.now() + (opts.timeoutMs ?? 5000);
    const signalled = new Set<number>();
    const unified = this.unifiedDir;
    if (signal === SIG.KILL && unified !== undefined && existsSync(`${unified}/cgroup.kill`)) {
      for (const pid of this.pids()) signalled.add(pid);
      writeText(`${unified}/cgroup.kill`, '1');
    }
    const freezer = findFreezer(unified, this.v1Dir('freezer'));
    for (;;) {
      let fresh = 0;
      const frozen = freezer !== undefined && (await freeze(freezer).catch(() => false));
      try {
        for (const pid of this.pids()) {
          // SIGKILL is repeated for stragglers; other signals go once to each process.
          if (signal !== SIG.KILL && signalled.has(pid)) continue;
          if (!signalled.has(pid)) fresh++;
          signalled.add(pid);
          sendSignal(pid, signal);
        }
      } finally {
        if (frozen && freezer !== undefined) thawUnlessGone(freezer);
      }
      if (signal === SIG.KILL ? this.isEmpty() : fresh === 0) return signalled.size;
      if (Date.now() > deadline) {
        throw new SdError(
          'ETIMEDOUT',
          `cgroup '${this.path}': processes still running after signal ${signal}: ${this.pids().join(' ')}`,
        );
      }
      await sleep(signal === SIG.KILL ? 5 : 1);
    }
  }

  /** Freezes the cgroup (v2 cgroup.freeze or the v1 freezer); false if it has no freezer. */
  async freeze(): Promise<boolean> {
    const f = findFreezer(this.unifiedDir, this.v1Dir('freezer'));
    return f !== undefined && freeze(f);
  }

  thaw(): void {
    const f = findFreezer(this.unifiedDir, this.v1Dir('freezer'));
    if (f !== undefined) thaw(f);
  }

  /**
   * Removes the cgroup and its descendants in every hierarchy, leaves first,
   * if no process is in them: true once all are gone. At the first busy
   * directory it stops and answers false (what it removed stays removed). A
   * cgroup the kernel still counts a process in refuses rmdir, so this is
   * the cheap check for an empty cgroup too: no walk unless it has children.
   */
  tryRemove(): boolean {
    for (const p of this.#places) {
      let errno = rmdirErrno(p.dir);
      if (errno === EBUSY) {
        for (const dir of subtree(p.dir).reverse()) {
          errno = rmdirErrno(dir);
          if (errno !== 0 && errno !== ENOENT) break;
        }
      }
      if (errno !== 0 && errno !== ENOENT) return false;
    }
    return true;
  }

  /**
   * Removes the cgroup and its descendants in every hierarchy (leaf first).
   * Exiting processes get `timeoutMs` to leave; a cgroup that stays busy is an
   * SdError('EBUSY') naming the directory and the pids in it.
   */
  async remove(opts: WaitOptions = {}): Promise<void> {
    const deadline = Date.now() + (opts.timeoutMs ?? 2000);
    for (const p of this.#places) {
      for (const dir of subtree(p.dir).reverse()) {
        for (;;) {
          const errno = rmdirErrno(dir);
          if (errno === 0 || errno === ENOENT) break;
          if (errno !== EBUSY) throw new SyscallError('rmdir', errno, dir);
          if (Date.now() > deadline) {
            const pids = readPids(`${dir}/cgroup.procs`);
            throw new SdError(
              'EBUSY',
              `cannot remove cgroup '${dir}': ${pids.length ? `processes ${pids.join(' ')} are still in it` : 'it is busy'}`,
              { cause: new SyscallError('rmdir', errno, dir) },
            );
          }
          await sleep(10);
        }
      }
    }
  }

  /**
   * Writes a limit. v2 names (memory.max, memory.high, pids.max, cpu.weight,
   * cpu.max) are translated to v1 files (memory.limit_in_bytes, cpu.shares, ...)
   * when the controller lives in a v1 hierarchy, and v1 names to v2 ones on v2;
   * other names are written as given to the controller's hierarchy.
   */
  setLimit(name: string, value: LimitValue): void {
    const v = formatValue(name, value);
    const knob = findKnob(name);
    const { dir, unified } = this.#placeFor(controllerOf(name), true);
    if (unified) {
      writeText(`${dir}/${knob?.v2 ?? name}`, knob && knob.v2 !== name ? v1ValueToV2(name, v) : v);
      return;
    }
    const writes: Array<[string, string]> = knob && knob.v2 === name ? knob.toV1(v) : [[name, v]];
    for (const [file, val] of writes) writeText(`${dir}/${file}`, val);
  }

  /** Reads a limit back, in the form of the name asked for (v2 names give v2 values). */
  getLimit(name: string): string {
    const knob = findKnob(name);
    const { dir, unified } = this.#placeFor(controllerOf(name), false);
    const read = (file: string) => readText(`${dir}/${file}`).trim();
    if (knob && knob.v2 === name && !unified) return knob.fromV1(read);
    if (knob && knob.v2 !== name && unified) {
      throw new SdError('EOPNOTSUPP', `'${name}' is a cgroup v1 file; read '${knob.v2}' on this system`);
    }
    return read(name);
  }

  /** An O_DIRECTORY fd of the unified directory (for clone3 CLONE_INTO_CGROUP). The caller closes it. */
  openDirFd(): number {
    const dir = this.unifiedDir;
    if (dir === undefined)
      throw new SdError('EOPNOTSUPP', `cgroup '${this.path}': no unified (v2) hierarchy`);
    return open(dir, O.RDONLY | O.DIRECTORY);
  }

  #placeFor(controller: string, enable: boolean): { dir: string; unified: boolean } {
    const v1 = this.v1Dir(controller);
    if (v1 !== undefined) return { dir: v1, unified: false };
    const u = this.#places.find((p) => p.unified);
    if (u === undefined) {
      throw new SdError('EOPNOTSUPP', `cgroup '${this.path}': controller '${controller}' is not mounted`);
    }
    if (enable) enableController(u.root, this.path, controller);
    return { dir: u.dir, unified: true };
  }
}

/** Enables `controller` in cgroup.subtree_control of every ancestor of `path` that lacks it. */
function enableController(root: string, path: string, controller: string): void {
  const words = (file: string) => (readTextIfExists(file) ?? '').trim().split(/\s+/);
  if (words(`${root}/${path}/cgroup.controllers`).includes(controller)) return;
  if (!words(`${root}/cgroup.controllers`).includes(controller)) {
    throw new SdError(
      'EOPNOTSUPP',
      `controller '${controller}' is not available in the unified hierarchy at '${root}' (bound to v1 or not built)`,
    );
  }
  const segs = path.split('/');
  let dir = root;
  for (let i = 0; i < segs.length; i++) {
    if (!words(`${dir}/cgroup.subtree_control`).includes(controller)) {
      writeText(`${dir}/cgroup.subtree_control`, `+${controller}`);
    }
    dir = `${dir}/${segs[i]}`;
  }
}

function inheritCpuset(parent: string, dir: string): void {
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    const own = readTextIfExists(`${dir}/${file}`);
    if (own === undefined || own.trim() !== '') continue;
    writeText(`${dir}/${file}`, readText(`${parent}/${file}`).trim() || '\n');
  }
}

/** `dir` and every cgroup below it, parents before children; nothing if `dir` is gone. */
function subtree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new SyscallError('opendir', Math.abs((err as NodeJS.ErrnoException).errno ?? 5), d, {
        cause: err,
      });
    }
    out.push(d);
    for (const e of entries) if (e.isDirectory()) walk(`${d}/${e.name}`);
  };
  walk(dir);
  return out;
}

function sendSignal(pid: number, signal: number): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') {
      throw new SyscallError('kill', (err as NodeJS.ErrnoException).errno ?? 1, `pid ${pid}`, {
        cause: err,
      });
    }
  }
}

/** Thaws; a cgroup removed meanwhile (its owner cleaned up after the last process) is nothing to thaw. */
function thawUnlessGone(f: Parameters<typeof thaw>[0]): void {
  try {
    thaw(f);
  } catch (e) {
    if (!(e instanceof SyscallError && e.code === 'ENOENT')) throw e;
  }
}

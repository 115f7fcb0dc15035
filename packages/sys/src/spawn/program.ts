import { SYS, type SyscallTable } from '../arch/index.js';
import { AT } from '../constants.js';
import { InvalidArgumentError } from '../errors.js';

/**
 * A spawn program: the list of system calls a freshly cloned child executes,
 * with every string, array and struct marshalled before the clone. See
 * native/x86_64.S for the format the interpreter reads.
 */

export const HEADER_SIZE = 16 + 64 * 8;
export const STEP_SIZE = 64;
export const SLOT_COUNT = 64;
const FLAG_IGNORE = 1;
const FLAG_STORE = 2;
const FLAG_JUMP_IF_POSITIVE = 4;

/** The result of an earlier step (an fd, usually), usable as a later argument. */
export class Slot {
  constructor(readonly index: number) {}
}

/** A pointer field inside a Data's bytes: at `offset`, the address of `target` once placed. */
export interface DataPointer {
  offset: number;
  target: Data;
}

/**
 * Bytes placed in the program's memory; the argument is their address.
 * `pointers` fill 8-byte pointer fields inside the bytes with the addresses
 * of other Data placed in the same memory (a struct that points at a buffer,
 * such as seccomp's sock_fprog), resolved in build().
 */
export class Data {
  constructor(
    readonly bytes: Buffer,
    readonly label?: string,
    readonly pointers: readonly DataPointer[] = [],
  ) {
    for (const p of pointers)
      if (p.offset < 0 || p.offset + 8 > bytes.length)
        throw new InvalidArgumentError(
          `pointer at ${p.offset} lies outside ${bytes.length} bytes of ${label ?? 'data'}`,
        );
  }
}

/** A NULL-terminated array of pointers to C strings (argv, envp). */
export class StringArray {
  constructor(readonly strings: readonly string[]) {}
}

/** Values only known when spawn() runs: the fds of its pipes. */
export type Placeholder = 'reportFd' | 'syncReadFd' | 'syncWriteFd' | 'forkPidFd';
export class Special {
  constructor(readonly name: Placeholder) {}
}

export type Arg = number | bigint | string | null | Slot | Data | StringArray | Special;

export interface StepOptions {
  /** Go on when the call fails. */
  ignoreErrno?: boolean;
  /** Store the result in a new slot and return it. */
  result?: boolean;
  /** What the step is for, in words, for the error when it fails ("overlay on /srv"). */
  label?: string;
}

export interface Step {
  /** Set by the caller: what the step is for, in words. */
  label?: string;
  /** What the step does, for error messages and plan tests: `mount`, `execve`... */
  name: string;
  nr: number;
  args: Arg[];
  ignoreErrno: boolean;
  slot?: Slot;
  /** On a result > 0 (the parent's side of a fork), go on at this step instead of the next. */
  jump?: number;
}

export interface Placeholders {
  reportFd: number;
  syncReadFd?: number;
  syncWriteFd?: number;
  /** Where the parent's side of a fork reports the child's pid (see reportForkedPid). */
  forkPidFd?: number;
}

/** A program laid out in memory that does not move (an ArrayBuffer's backing store). */
export interface BuiltProgram {
  memory: Buffer;
  address: bigint;
}

const NUL = Buffer.of(0);

function cstring(s: string): Buffer {
  if (s.includes('\0')) throw new InvalidArgumentError(`string contains a NUL byte: ${JSON.stringify(s)}`);
  return Buffer.concat([Buffer.from(s), NUL]);
}

export class SpawnProgram {
  readonly steps: Step[] = [];
  private slots = 0;
  private syncUsed = false;
  private forked = false;
  readonly sys: SyscallTable;

  constructor(sys: SyscallTable = SYS) {
    this.sys = sys;
  }

  /**
   * Whether the child can run in its parent's memory (CLONE_VM) until its
   * execve: never when it joins another process's namespaces (setns) or
   * makes a user namespace (unshare). The kernel refuses a user namespace
   * to a task that shares its memory, and a process that enters a running
   * container must not share a daemon's memory whatever it joins: once it
   * is visible there, root inside could write into the daemon through it.
   */
  get canShareMemory(): boolean {
    const NEWUSER = 0x10000000;
    return !this.steps.some((s) => {
      if (s.name === 'unshare') return typeof s.args[0] !== 'number' || (s.args[0] & NEWUSER) !== 0;
      return s.name === 'setns' || s.name === 'clone';
    });
  }

  /** Whether the program waits for the parent (spawn() then creates the sync pipe). */
  get waitsForParent(): boolean {
    return this.syncUsed;
  }

  /** Appends one system call. Returns the result slot when `result` is set. */
  syscall(name: string, nr: number, args: Arg[], options: StepOptions = {}): Slot | undefined {
    if (args.length > 6) throw new InvalidArgumentError(`${name}: a system call takes at most 6 arguments`);
    let slot: Slot | undefined;
    if (options.result) {
      if (this.slots >= SLOT_COUNT)
        throw new InvalidArgumentError(`spawn program uses more than ${SLOT_COUNT} result slots`);
      slot = new Slot(this.slots++);
    }
    const step: Step = { name, nr, args, ignoreErrno: options.ignoreErrno ?? false };
    if (options.label) step.label = options.label;
    if (slot) step.slot = slot;
    this.steps.push(step);
    return slot;
  }

  private call(name: keyof SyscallTable, args: Arg[], options?: StepOptions): void {
    this.syscall(name, this.sys[name], args, options);
  }

  private callResult(name: keyof SyscallTable, args: Arg[], options?: StepOptions): Slot {
    return this.syscall(name, this.sys[name], args, { ...options, result: true }) as Slot;
  }

  // The calls below are thin: their arguments are the kernel's.

  mount(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data: string | null = null,
    o?: StepOptions,
  ): this {
    this.call('mount', [source, target, fstype, flags, data], o);
    return this;
  }

  umount(target: string, flags = 0, o?: StepOptions): this {
    this.call('umount2', [target, flags], o);
    return this;
  }

  mkdir(path: string, mode = 0o755, o?: StepOptions): this {
    this.call('mkdirat', [AT.FDCWD, path, mode], o);
    return this;
  }

  symlink(target: string, linkpath: string, o?: StepOptions): this {
    this.call('symlinkat', [target, AT.FDCWD, linkpath], o);
    return this;
  }

  mknod(path: string, mode: number, dev: number, o?: StepOptions): this {
    this.call('mknodat', [AT.FDCWD, path, mode, dev], o);
    return this;
  }

  chdir(path: string, o?: StepOptions): this {
    this.call('chdir', [path], o);
    return this;
  }

  chroot(path: string, o?: StepOptions): this {
    this.call('chroot', [path], o);
    return this;
  }

  pivotRoot(newRoot: string, putOld: string, o?: StepOptions): this {
    this.call('pivot_root', [newRoot, putOld], o);
    return this;
  }

  sethostname(name: string, o?: StepOptions): this {
    const b = Buffer.from(name);
    this.call('sethostname', [new Data(b, name), b.length], o);
    return this;
  }

  openat(dirfd: number | Slot, path: string, flags: number, mode = 0, o?: StepOptions): Slot {
    return this.callResult('openat', [dirfd, path, flags, mode], o);
  }

  openTree(dirfd: number | Slot, path: string, flags: number, o?: StepOptions): Slot {
    return this.callResult('open_tree', [dirfd, path, flags], o);
  }

  moveMount(
    fromDirfd: number | Slot,
    fromPath: string,
    toDirfd: number | Slot,
    toPath: string,
    flags: number,
    o?: StepOptions,
  ): this {
    this.call('move_mount', [fromDirfd, fromPath, toDirfd, toPath, flags], o);
    return this;
  }

  /**
   * A new file system as a detached mount (fsopen, fsconfig, fsmount),
   * returned as a slot for moveMount(). The kernel's visibility checks (for
   * proc and sysfs in a user namespace) apply where it is made, so it can be
   * made before pivot_root and attached after it.
   */
  newMount(fstype: string, attrFlags: number, options: Record<string, string> = {}, o?: StepOptions): Slot {
    const ctx = this.callResult('fsopen', [fstype, 1 /* FSOPEN_CLOEXEC */], o);
    for (const [key, value] of Object.entries(options))
      this.call('fsconfig', [ctx, 1 /* FSCONFIG_SET_STRING */, key, value, 0], o);
    this.call('fsconfig', [ctx, 6 /* FSCONFIG_CMD_CREATE */, null, null, 0], o);
    const fd = this.callResult('fsmount', [ctx, 1 /* FSMOUNT_CLOEXEC */, attrFlags], o);
    this.close(ctx, { ignoreErrno: true });
    return fd;
  }

  /** mount_setattr(2) with a struct mount_attr built here. */
  mountSetattr(
    dirfd: number | Slot,
    path: string,
    flags: number,
    attr: { set?: number; clear?: number; propagation?: number; usernsFd?: number },
    o?: StepOptions,
  ): this {
    const b = Buffer.alloc(32);
    b.writeBigUInt64LE(BigInt(attr.set ?? 0), 0);
    b.writeBigUInt64LE(BigInt(attr.clear ?? 0), 8);
    b.writeBigUInt64LE(BigInt(attr.propagation ?? 0), 16);
    b.writeBigUInt64LE(BigInt(attr.usernsFd ?? 0), 24);
    this.call('mount_setattr', [dirfd, path, flags, new Data(b, 'mount_attr'), 32], o);
    return this;
  }

  close(fd: number | Slot | Special, o?: StepOptions): this {
    this.call('close', [fd], o);
    return this;
  }

  dup2(oldfd: number | Slot, newfd: number, o?: StepOptions): this {
    this.call('dup3', [oldfd, newfd, 0], o);
    return this;
  }

  /**
   * Keeps fds open across execve: 0, 1 and 2 as they are (Node's own stdio
   * may be close-on-exec), or `fd` placed at `target` when a pair is given.
   */
  stdio(fds: ReadonlyArray<number | undefined> = [0, 1, 2]): this {
    fds.forEach((fd, target) => {
      if (fd === undefined) return;
      if (fd === target) this.call('fcntl', [fd, 2 /* F_SETFD */, 0], { ignoreErrno: true });
      else this.call('dup3', [fd, target, 0]);
    });
    return this;
  }

  /**
   * A fork: clone(2) on the same (copied) stack, with `flags` (CLONE_PARENT,
   * CLONE_PARENT_SETTID with `parentTid` receiving the child's pid in the
   * parent's memory...). The child goes on with the next step; the parent
   * goes on at the step set later in the returned step's `jump`.
   */
  fork(flags: number | bigint, parentTid: Data | null = null, o?: StepOptions): Step {
    this.call('clone', [flags, 0, parentTid, 0, 0], o);
    const step = this.steps[this.steps.length - 1]!;
    step.jump = this.steps.length;
    return step;
  }

  /**
   * The parent's side of a fork(): hands spawn() the pid of the child (from
   * CLONE_PARENT_SETTID's `parentTid`, 4 bytes) and exits. spawn() then
   * follows that child (a CLONE_PARENT child of ours) instead of the parent.
   * Put it after the child's last step, and point the fork's `jump` at it.
   */
  reportForkedPid(fork: Step, parentTid: Data): this {
    this.forked = true;
    fork.jump = this.steps.length;
    this.call('write', [new Special('forkPidFd'), parentTid, 4]);
    this.exit(0);
    return this;
  }

  /** Whether the program forks and spawn() follows the forked child. */
  get followsFork(): boolean {
    return this.forked;
  }

  setns(fd: number | Slot, nstype: number, o?: StepOptions): this {
    this.call('setns', [fd, nstype], o);
    return this;
  }

  unshare(flags: number, o?: StepOptions): this {
    this.call('unshare', [flags], o);
    return this;
  }

  setsid(o?: StepOptions): this {
    this.call('setsid', [], o);
    return this;
  }

  ioctl(fd: number | Slot, request: number, arg: Arg = 0, o?: StepOptions): this {
    this.call('ioctl', [fd, request, arg], o);
    return this;
  }

  prctl(option: number, a2: Arg = 0, a3: Arg = 0, a4: Arg = 0, a5: Arg = 0, o?: StepOptions): this {
    this.call('prctl', [option, a2, a3, a4, a5], o);
    return this;
  }

  write(fd: number | Slot, data: Buffer | string, o?: StepOptions): this {
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    this.call('write', [fd, new Data(b), b.length], o);
    return this;
  }

  setresuid(uid: number, o?: StepOptions): this {
    this.call('setresuid', [uid, uid, uid], o);
    return this;
  }

  setresgid(gid: number, o?: StepOptions): this {
    this.call('setresgid', [gid, gid, gid], o);
    return this;
  }

  setgroups(groups: readonly number[], o?: StepOptions): this {
    const b = Buffer.alloc(Math.max(4, groups.length * 4));
    groups.forEach((g, i) => b.writeUInt32LE(g, i * 4));
    this.call('setgroups', [groups.length, groups.length ? new Data(b, 'groups') : null], o);
    return this;
  }

  /**
   * setfsuid(2)/setfsgid(2): the ids file creation and permission checks
   * use. They return the previous id, never an error: always unchecked.
   */
  setfsid(uid: number, gid: number): this {
    this.call('setfsgid', [gid], { ignoreErrno: true });
    this.call('setfsuid', [uid], { ignoreErrno: true });
    return this;
  }

  umask(mask: number): this {
    this.call('umask', [mask]);
    return this;
  }

  /** Marks every fd from `first` on close-on-exec, so nothing of the parent leaks into the payload. */
  closeOnExecFrom(first: number): this {
    this.call('close_range', [first, 0xffffffff, 4 /* CLOSE_RANGE_CLOEXEC */]);
    return this;
  }

  /**
   * Blocks until the parent has done its part (uid maps, cgroup, links). The
   * child first drops its copy of the write end, so that a parent that dies
   * ends the wait with EOF instead of a hang.
   */
  waitForParent(o: { exitOnEof?: boolean } = {}): this {
    this.syncUsed = true;
    this.close(new Special('syncWriteFd'));
    this.call('read', [new Special('syncReadFd'), new Data(Buffer.alloc(8), 'sync byte'), 1]);
    if (o.exitOnEof) {
      // The byte goes on past the exit; EOF (a parent that died without
      // sending it, with no parent-death signal to end us) falls into it.
      const read = this.steps[this.steps.length - 1]!;
      this.exit(1);
      read.jump = this.steps.length;
    }
    this.close(new Special('syncReadFd'));
    return this;
  }

  /**
   * Signal state for the payload: every catchable signal back to SIG_DFL
   * (clone3's CLONE_CLEAR_SIGHAND resets handlers but keeps ignored signals
   * ignored, and Node ignores SIGPIPE), then an empty mask. Put it right
   * before execve: until then all signals stay blocked as spawn() left them.
   */
  resetSignals(): this {
    const dfl = new Data(Buffer.alloc(32), 'SIG_DFL sigaction');
    for (let sig = 1; sig <= 64; sig++) {
      if (sig === 9 || sig === 19 || sig === 32 || sig === 33) continue;
      this.call('rt_sigaction', [sig, dfl, null, 8], { ignoreErrno: true });
    }
    this.call('rt_sigprocmask', [2 /* SIG_SETMASK */, new Data(Buffer.alloc(8), 'empty sigset'), null, 8]);
    return this;
  }

  /** execve(2). With `ignoreErrno`, a failed attempt falls through to the next step (a $PATH search). */
  execve(path: string, argv: readonly string[], envp: readonly string[], o?: StepOptions): this {
    this.call('execve', [path, new StringArray(argv), new StringArray(envp)], o);
    return this;
  }

  exit(status: number): this {
    this.call('exit_group', [status]);
    return this;
  }

  /** A readable description of each step, for error messages and plan tests. */
  describe(): string[] {
    return this.steps.map((s) => {
      const call = `${s.name}(${s.args.map(describeArg).join(', ')})`;
      return s.label ? `${s.label}: ${call}` : call;
    });
  }

  /**
   * Lays the program out in memory; `at` fixes the address it will run at
   * instead (for an interpreter outside this process, as the aarch64 test
   * under qemu-user does).
   */
  build(values: Placeholders, at?: bigint): BuiltProgram {
    const data: Buffer[] = [];
    let dataSize = 0;
    const base = HEADER_SIZE + this.steps.length * STEP_SIZE;
    const place = (b: Buffer): number => {
      const off = base + dataSize;
      data.push(b);
      dataSize += b.length;
      const pad = (8 - (dataSize % 8)) % 8;
      if (pad) {
        data.push(Buffer.alloc(pad));
        dataSize += pad;
      }
      return off;
    };
    // Offsets first; addresses once the memory exists.
    type Resolved = { offset: number } | { value: bigint } | { slot: number };
    const arrays: Array<{ at: number; items: number[] }> = [];
    const fixups: Array<{ at: number; target: number }> = [];
    // One Data object is placed once: steps that pass the same Data share
    // its memory (a buffer one step fills and a later step writes out).
    const placed = new Map<Data, number>();
    const placeData = (d: Data): number => {
      const known = placed.get(d);
      if (known !== undefined) return known;
      const targets = d.pointers.map((p) => placeData(p.target));
      const at = place(d.bytes);
      d.pointers.forEach((p, i) => fixups.push({ at: at + p.offset, target: targets[i]! }));
      placed.set(d, at);
      return at;
    };
    const resolve = (a: Arg): Resolved => {
      if (a === null) return { value: 0n };
      if (typeof a === 'number') return { value: BigInt.asUintN(64, BigInt(a)) };
      if (typeof a === 'bigint') return { value: BigInt.asUintN(64, a) };
      if (typeof a === 'string') return { offset: place(cstring(a)) };
      if (a instanceof Slot) return { slot: a.index };
      if (a instanceof Data) return { offset: placeData(a) };
      if (a instanceof Special) {
        const v = values[a.name];
        if (v === undefined) throw new InvalidArgumentError(`spawn program needs ${a.name}`);
        return { value: BigInt(v) };
      }
      const items = a.strings.map((s) => place(cstring(s)));
      const at = place(Buffer.alloc((items.length + 1) * 8));
      arrays.push({ at, items });
      return { offset: at };
    };
    const resolvedSteps = this.steps.map((s) => s.args.map(resolve));

    const ab = new ArrayBuffer(base + dataSize);
    const memory = Buffer.from(ab);
    const address = at ?? addressOfMemory(memory);
    let off = base;
    for (const d of data) {
      d.copy(memory, off);
      off += d.length;
    }
    for (const { at, items } of arrays) {
      items.forEach((item, i) => memory.writeBigUInt64LE(address + BigInt(item), at + i * 8));
    }
    for (const { at, target } of fixups) memory.writeBigUInt64LE(address + BigInt(target), at);
    memory.writeBigUInt64LE(BigInt(this.steps.length), 0);
    memory.writeBigUInt64LE(BigInt(values.reportFd), 8);
    this.steps.forEach((s, i) => {
      const at = HEADER_SIZE + i * STEP_SIZE;
      memory.writeBigUInt64LE(BigInt(s.nr), at);
      let flags = (s.ignoreErrno ? FLAG_IGNORE : 0) | (s.slot ? FLAG_STORE : 0);
      if (s.jump !== undefined) {
        if (!Number.isInteger(s.jump) || s.jump < 0 || s.jump > this.steps.length || s.jump > 0xffff)
          throw new InvalidArgumentError(`step ${i} jumps to step ${s.jump}, outside the program`);
        flags |= FLAG_JUMP_IF_POSITIVE | (s.jump << 16);
      }
      resolvedSteps[i]!.forEach((r, j) => {
        let v: bigint;
        if ('slot' in r) {
          flags |= 1 << (8 + j);
          v = BigInt(r.slot);
        } else if ('offset' in r) v = address + BigInt(r.offset);
        else v = r.value;
        memory.writeBigUInt64LE(v, at + 8 + j * 8);
      });
      memory.writeUInt32LE(flags, at + 56);
      memory.writeUInt32LE(s.slot?.index ?? 0, at + 60);
    });
    return { memory, address };
  }
}

let addressOfMemory: (b: Buffer) => bigint = () => {
  throw new Error('spawn program memory needs the native layer');
};

/** Set by the native layer (kept out of this module so plans can be built and tested without koffi). */
export function setAddressResolver(fn: (b: Buffer) => bigint): void {
  addressOfMemory = fn;
}

function describeArg(a: Arg): string {
  if (a === null) return 'NULL';
  if (typeof a === 'string') return JSON.stringify(a);
  if (typeof a === 'number' || typeof a === 'bigint') return String(a);
  if (a instanceof Slot) return `$${a.index}`;
  if (a instanceof Special) return `<${a.name}>`;
  if (a instanceof StringArray) return `[${a.strings.map((s) => JSON.stringify(s)).join(', ')}]`;
  return a.label !== undefined ? `<${a.label}>` : `<${a.bytes.length} bytes>`;
}

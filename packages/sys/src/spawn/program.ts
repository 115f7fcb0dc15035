import { readFileSync } from 'node:fs';
import { SYS, type SyscallTable } from '../arch/index.js';
import { AT, CLONE } from '../constants.js';
import { InvalidArgumentError } from '../errors.js';
import { encodeMountAttr, type MountAttr } from '../mount/attr.js';
import { view } from '../view.js';
import { describeArg, layoutProgram, SLOT_COUNT } from './layout.js';
import {
  type Arg,
  type BuiltProgram,
  Data,
  type Placeholders,
  Slot,
  Special,
  StackTop,
  type Step,
  type StepOptions,
  StringArray,
} from './steps.js';

/**
 * A spawn program: the list of system calls a freshly cloned child executes,
 * with every string, array and struct marshalled before the clone. See
 * native/x86_64.S for the format the interpreter reads.
 */

export { HEADER_SIZE, SLOT_COUNT, STEP_SIZE, setAddressResolver } from './layout.js';
export * from './steps.js';

/** The stack of a fork that shares memory: the interpreter needs 16 bytes of it, to report a failure. */
const FORK_STACK_SIZE = 1024;

/** Calls that change a task's uid or gid: in our memory, they would make it not dumpable. */
const ID_CHANGES = new Set(['setresuid', 'setresgid', 'setfsuid', 'setfsgid']);

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
   * execve: never when it joins another process's namespaces (setns), makes
   * a user namespace (unshare) or changes its ids. Not that the kernel
   * would refuse it (it refuses a user namespace only to a task that shares
   * its fs or thread group, not its memory), but a process that enters a
   * running container must not share a daemon's memory whatever it joins
   * (once it is visible there, root inside could write into the daemon
   * through it), a changed uid or gid marks the memory the task runs on,
   * Node's own, not dumpable, and a task holding every capability of a
   * user namespace is kept out of our memory as well.
   */
  get canShareMemory(): boolean {
    const NEWUSER = 0x10000000;
    return !this.steps.some((s) => {
      if (s.name === 'unshare') return typeof s.args[0] !== 'number' || (s.args[0] & NEWUSER) !== 0;
      return s.name === 'setns' || s.name === 'clone' || ID_CHANGES.has(s.name);
    });
  }

  /**
   * Whether the program needs a memory of its own even where its caller
   * would let it share ours (joinsOwnSetup): it makes or joins a user
   * namespace (or may: a flag or namespace type that is not a constant),
   * changes its ids (see canShareMemory), or forks (the fork would run on
   * our stack).
   */
  get needsOwnMemory(): boolean {
    const NEWUSER = 0x10000000;
    return this.steps.some((s) => {
      if (s.name === 'unshare' || s.name === 'setns') {
        const flags = s.args[s.name === 'unshare' ? 0 : 1];
        return typeof flags !== 'number' || flags === 0 || (flags & NEWUSER) !== 0;
      }
      return s.name === 'clone' || ID_CHANGES.has(s.name);
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
  mountSetattr(dirfd: number | Slot, path: string, flags: number, attr: MountAttr, o?: StepOptions): this {
    this.call('mount_setattr', [dirfd, path, flags, new Data(encodeMountAttr(attr), 'mount_attr'), 32], o);
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
   * A fork: clone(2) with `flags` (CLONE_PARENT, CLONE_PARENT_SETTID with
   * `parentTid` receiving the child's pid in the parent's memory...). The
   * child goes on with the next step; the parent goes on at the step set
   * later in the returned step's `jump`. Without CLONE_VM the child runs on
   * a copy of the stack; with it, on a small stack of its own in the
   * program's memory (the interpreter keeps its state in registers), sharing
   * the memory of the process that runs the program (never Node's: a
   * program that forks always gets a memory of its own, needsOwnMemory) and
   * so its result slots: the fork then copies no page tables.
   */
  fork(flags: number | bigint, parentTid: Data | null = null, o?: StepOptions): Step {
    const sharesMemory = (BigInt(flags) & BigInt(CLONE.VM)) !== 0n;
    const stack = sharesMemory ? new StackTop(new Data(Buffer.alloc(FORK_STACK_SIZE), 'fork stack')) : 0;
    this.call('clone', [flags, stack, parentTid, 0, 0], o);
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
    const v = view(b);
    groups.forEach((g, i) => v.setUint32(i * 4, g, true));
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
   * Signal state for the payload: the signals this process ignores back to
   * SIG_DFL (clone3's CLONE_CLEAR_SIGHAND, which spawn() always sets, resets
   * every caught signal but keeps ignored ones ignored, and Node ignores
   * SIGPIPE), then an empty mask. Put it right before execve: until then all
   * signals stay blocked as spawn() left them. The ignored set is read when
   * the program is built (Node ignores signals only as it starts); where it
   * cannot be read, every catchable signal is reset (one step each: 60 steps
   * where the usual set needs one or two).
   */
  resetSignals(): this {
    const dfl = new Data(Buffer.alloc(32), 'SIG_DFL sigaction');
    for (const sig of ignoredSignals()) this.call('rt_sigaction', [sig, dfl, null, 8], { ignoreErrno: true });
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

  /** Lays the program out in memory (layout.ts); `at` fixes the address it will run at instead. */
  build(values: Placeholders, at?: bigint): BuiltProgram {
    return layoutProgram(this.steps, values, at);
  }
}

/** SIGKILL and SIGSTOP cannot be ignored; 32 and 33 are glibc's own, never ignored. */
const UNRESETTABLE = new Set([9, 19, 32, 33]);

/**
 * The signals this process ignores, from SigIgn in /proc/self/status (a hex
 * mask, bit n-1 for signal n); every catchable signal when that cannot be read.
 */
export function ignoredSignals(status?: string): number[] {
  let mask: bigint | undefined;
  try {
    // 'utf8' (ASCII here): Node reads that in one call; other encodings take its slower generic path.
    const text = status ?? readFileSync('/proc/self/status', 'utf8');
    // The "SigIgn:" line's hex, found without a regex (each compiles at its first use). With a
    // '\n' put first, the first line is found like the others, at the index the key has in `text`.
    const at = `\n${text}`.indexOf('\nSigIgn:');
    const eol = at < 0 ? -1 : text.indexOf('\n', at);
    const hex = at < 0 ? '' : text.slice(at + 'SigIgn:'.length, eol < 0 ? undefined : eol).trim();
    const isHex = (c: string) => (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (hex !== '' && [...hex].every(isHex)) mask = BigInt(`0x${hex}`);
  } catch {}
  const out: number[] = [];
  for (let sig = 1; sig <= 64; sig++)
    if (!UNRESETTABLE.has(sig) && (mask === undefined || (mask >> BigInt(sig - 1)) & 1n)) out.push(sig);
  return out;
}

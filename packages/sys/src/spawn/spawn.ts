import { hostArch } from '../arch/index.js';
import { CLONE, O, SIG } from '../constants.js';
import { errnoName, SdError, SyscallError, strerror } from '../errors.js';
import { close, closeQuietly, pipe, read, writeAll } from '../fd/fd.js';
import { addressOf, check, koffi, lazyFunc } from '../ffi/libc.js';
import { poller, waitReadable } from '../poller/poller.js';
import { openNamespace, setns } from '../proc/ns.js';
import { ChildProcess, pidfdOpen, pidfdSendSignal } from '../proc/pidfd.js';
import { view } from '../view.js';
import { interpreters } from './interp.generated.js';
import { type SpawnProgram, setAddressResolver } from './program.js';

setAddressResolver(addressOf);

/** A spawn program failed before its execve succeeded. */
export class SpawnError extends SyscallError {
  /** Index of the failing step in the program. */
  readonly step: number;
  /** The failing step as SpawnProgram.describe() shows it. */
  readonly stepDescription: string;
  constructor(step: number, description: string, syscall: string, errno: number) {
    super(syscall, errno);
    this.step = step;
    this.stepDescription = description;
    this.message = `spawn step ${step} failed: ${description}: ${errnoName(errno)} (${strerror(errno)})`;
  }
}

export interface SpawnOptions {
  /**
   * Run the child in our memory until its execve (CLONE_VM): much cheaper.
   * Default: SpawnProgram.canShareMemory (no setns steps, no user
   * namespace). A child that joins another process's namespaces never
   * shares memory: asking for it is an error. Daemons pass `false`.
   */
  shareMemory?: boolean;
  /**
   * The caller vouches that every namespace the program joins (setns) runs
   * nothing but our own setup until the child has exited or exec'd — a
   * container being set up, none of its code running yet — so the child may
   * share our memory though it joins them: nothing there can reach into it.
   * Ignored for a program that needs its own memory (needsOwnMemory).
   */
  joinsOwnSetup?: boolean;
  /** CLONE_NEW* flags for the child's namespaces. */
  cloneFlags?: number | bigint;
  /** An fd of a cgroup v2 directory the child starts in (CLONE_INTO_CGROUP). */
  cgroupFd?: number;
  /**
   * Runs right after the clone, while the child runs its first steps on
   * another CPU: the caller's own work that needs no answer from the child,
   * done meanwhile instead of after. The child is killed if this throws.
   */
  afterClone?: () => void;
  /**
   * Runs while the child waits in SpawnProgram.waitForParent(): write uid
   * maps, move links into its network namespace, attach it to cgroups. The
   * child is killed if this throws.
   */
  beforeRun?: (child: ChildProcess) => void | Promise<void>;
  /**
   * A pidfd (or /proc/PID/ns/pid fd) whose PID namespace the child is born
   * in, as a process that joins a running container must be: the main
   * thread's "pid for children" is switched for the clone and switched back
   * right after it (setns(CLONE_NEWPID) changes nothing else, and only for
   * the calling thread). Not with CLONE_NEWPID in `cloneFlags`.
   */
  pidNamespaceOf?: number;
  /**
   * An fd of a network namespace (or a pidfd) the child is born in instead
   * of ours: the main thread joins it for the clone and returns right
   * after (a network namespace change is per thread). Not with CLONE_NEWNET.
   */
  netNamespaceOf?: number;
  /**
   * How long (ms) spawn may block this thread for each answer of a child
   * whose start is short and bounded (its fork's pid, the report of its
   * execve or end) before it waits through the poller instead: a round trip
   * through the poller's thread costs more than such a child takes. For a
   * caller with nothing else to do meanwhile (a CLI starting a container);
   * default 0, never blocking, as a daemon needs. With it, the child comes
   * back not yet watched by the poller: await its `exited` (or exitedSoon).
   */
  briefWaitMs?: number;
}

const c = {
  mmap: lazyFunc('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)'),
  mprotect: lazyFunc('int mprotect(void *addr, size_t len, int prot)'),
  munmap: lazyFunc('int munmap(void *addr, size_t len)'),
  sigmask: lazyFunc('int pthread_sigmask(int how, const uint8_t *set, _Out_ uint8_t *old)'),
};

const STACK_SIZE = 64 * 1024;
const MAP_FAILED = BigInt.asUintN(64, -1n);

/** A stack for a child that shares our memory (MAP_STACK; freed once it has exec'd or exited). */
function mapStack(): bigint {
  const addr = c.mmap(null, STACK_SIZE, 3 /* RW */, 0x20022 /* PRIVATE|ANONYMOUS|STACK */, -1, 0) as bigint;
  if (addr === MAP_FAILED || addr === -1n) throw new SyscallError('mmap', koffi.errno());
  return addr;
}

function unmapStack(addr: bigint): void {
  c.munmap(addr, STACK_SIZE);
}

interface Native {
  clone3: (args: Buffer, size: number, program: bigint) => number | bigint;
}

let native: Native | undefined;

/** Places the interpreter's bytes in an executable page of their own (never MADV_DONTFORK). */
function loadNative(): Native {
  if (native) return native;
  const interp = interpreters[hostArch()];
  const code = Buffer.from(interp.code, 'base64');
  const size = 4096;
  const page = c.mmap(null, size, 3 /* RW */, 0x22 /* PRIVATE|ANONYMOUS */, -1, 0) as bigint;
  if (page === -1n || page === BigInt.asUintN(64, -1n)) throw new SyscallError('mmap', koffi.errno());
  new Uint8Array(koffi.view(page, size)).set(code);
  check('mprotect', c.mprotect(page, size, 5 /* R|X */));
  const proto = koffi.proto('long sd_clone3(uint8_t *args, size_t size, uint64_t program)');
  const fn = koffi.decode(page + BigInt(interp.entries.sd_clone3), proto) as Native['clone3'];
  native = { clone3: fn };
  return native;
}

const ALL_SIGNALS = new Uint8Array(128).fill(0xff);

/**
 * The memory of every program a child may still be running in. A child that
 * shares our memory (CLONE_VM) reads its steps, paths and buffers from it
 * until its execve, long after spawn() last touched it: an optimised spawn()
 * keeps no dead local alive across an await, so without this reference the
 * collector frees the memory under the child, which then runs (and opens,
 * creates, reads into) whatever the allocator put there since.
 */
const running = new Map<number, Buffer>();
let programs = 0;

/**
 * Clones a child that runs `program` (ending, normally, in execve). Resolves
 * once the program has exec'd — its report pipe closed on exec — with a
 * handle whose `exited` promise gives the exit status; rejects with a
 * SpawnError naming the failing step otherwise. Nothing is left running or
 * open when it rejects.
 */
export async function spawn(program: SpawnProgram, options: SpawnOptions = {}): Promise<ChildProcess> {
  const { clone3 } = loadNative();
  const [reportRead, reportWriteFd] = pipe(O.CLOEXEC);
  let reportWrite: number | undefined = reportWriteFd;
  let syncRead: number | undefined;
  let syncWrite: number | undefined;
  let forkRead: number | undefined;
  let forkWrite: number | undefined;
  let child: ChildProcess | undefined;
  let stack: bigint | undefined;
  const id = ++programs;
  let reportClosed = false;
  try {
    if (program.waitsForParent) [syncRead, syncWrite] = pipe(O.CLOEXEC);
    if (program.followsFork) [forkRead, forkWrite] = pipe(O.CLOEXEC);
    const built = program.build({
      reportFd: reportWrite,
      syncReadFd: syncRead,
      syncWriteFd: syncWrite,
      forkPidFd: forkWrite,
    });
    running.set(id, built.memory);

    // struct clone_args (v2, 88 bytes)
    const args = Buffer.alloc(88);
    const argv = view(args);
    // Its own ArrayBuffer: off V8's heap, so the address the kernel writes to stays put.
    const pidfdOut = new Uint8Array(new ArrayBuffer(8));
    let flags = BigInt(options.cloneFlags ?? 0) | BigInt(CLONE.PIDFD) | CLONE.CLEAR_SIGHAND;
    if (options.cgroupFd !== undefined) {
      flags |= CLONE.INTO_CGROUP;
      argv.setBigUint64(80, BigInt(options.cgroupFd), true);
    }
    // Sharing our memory (CLONE_VM, as posix_spawn does) spares the copy of
    // Node's page tables, most of a spawn's cost; the child then runs on a
    // stack of its own and touches nothing but it and the program memory.
    // A child that makes or joins a user namespace or changes its ids gets
    // a memory of its own (SpawnProgram.canShareMemory says why).
    const canShare =
      options.pidNamespaceOf === undefined &&
      (program.canShareMemory || (options.joinsOwnSetup === true && !program.needsOwnMemory));
    if (options.shareMemory && !canShare)
      throw new SdError('EINVAL', 'spawn: a child that joins other namespaces cannot share our memory');
    if (options.shareMemory ?? canShare) {
      stack = mapStack();
      flags |= BigInt(CLONE.VM);
      argv.setBigUint64(40, stack, true);
      argv.setBigUint64(48, BigInt(STACK_SIZE), true);
    }
    argv.setBigUint64(0, flags, true);
    argv.setBigUint64(8, addressOf(pidfdOut), true);
    argv.setBigUint64(32, BigInt(SIG.CHLD), true);

    // All signals blocked across the clone: the child must not run Node's
    // handlers before execve; the program unblocks them just before it.
    const old = Buffer.alloc(128);
    const ownPidNs = options.pidNamespaceOf === undefined ? undefined : enterPidNamespace(options, flags);
    let ownNetNs: number | undefined;
    if (options.netNamespaceOf !== undefined) {
      if (flags & BigInt(CLONE.NEWNET))
        throw new SdError('EINVAL', 'spawn: netNamespaceOf and CLONE_NEWNET exclude each other');
      ownNetNs = openNamespace('thread-self', 'net');
      setns(options.netNamespaceOf, CLONE.NEWNET);
    }
    c.sigmask(2 /* SIG_SETMASK */, ALL_SIGNALS, old);
    // The raw system call returns -errno; errno itself is untouched.
    const ret = Number(clone3(args, 88, built.address));
    c.sigmask(2, old, null);
    if (ownPidNs !== undefined) leavePidNamespace(ownPidNs);
    if (ownNetNs !== undefined) {
      try {
        setns(ownNetNs, CLONE.NEWNET);
      } finally {
        closeQuietly(ownNetNs);
      }
    }
    if (ret < 0) throw new SyscallError('clone3', -ret);

    const brief = options.briefWaitMs ?? 0;
    child = new ChildProcess(ret, view(pidfdOut).getInt32(0, true), brief === 0);
    close(reportWrite);
    reportWrite = undefined;
    if (syncRead !== undefined) {
      close(syncRead);
      syncRead = undefined;
    }
    options.afterClone?.();
    // A parent that failed before its fork: its report says why.
    let failedBeforeFork = false;
    if (forkRead !== undefined) {
      const forked = await followFork(child, forkRead, forkWrite as number, brief);
      forkWrite = undefined;
      if (forked) child = forked;
      else failedBeforeFork = true;
    }

    if (syncWrite !== undefined && !failedBeforeFork) {
      await options.beforeRun?.(child);
      writeAll(syncWrite, Buffer.of(1));
      close(syncWrite);
      syncWrite = undefined;
    }

    await readable(reportRead, brief);
    const report = Buffer.alloc(8);
    const n = read(reportRead, report);
    reportClosed = true;
    if (n === 8) {
      await child.exited;
      const step = view(report).getUint32(0, true);
      const errno = view(report).getUint32(4, true);
      const s = program.steps[step];
      throw new SpawnError(step, program.describe()[step] ?? `step ${step}`, s?.name ?? 'unknown', errno);
    }
    if (n !== 0) throw new SdError('ESPAWN', `spawn: short report of ${n} bytes from the child`);
    return child;
  } catch (e) {
    if (child && !child.exitStatus) {
      pidfdSendSignal(child.pidfd, SIG.KILL);
      await child.exited.catch(() => undefined);
    }
    throw e;
  } finally {
    closeQuietly(reportRead, reportWrite, syncRead, syncWrite, forkRead, forkWrite);
    // The child is past execve (or gone): its stack and the program memory
    // are free. Otherwise (it cannot be: it was killed and reaped above) both
    // stay, as a leak is better than a child running in freed memory.
    if (child === undefined || child.exitStatus || reportClosed) {
      if (stack !== undefined) unmapStack(stack);
      running.delete(id);
    }
  }
}

/**
 * The program forked (SpawnProgram.fork/reportForkedPid): the parent reports
 * the child's pid and exits; from then on the child, a CLONE_PARENT child of
 * ours, is the process we follow. Before the fork, the parent is (a failure
 * ends the wait with EOF, and its report tells why).
 */
async function followFork(
  parent: ChildProcess,
  forkRead: number,
  forkWrite: number,
  brief: number,
): Promise<ChildProcess | undefined> {
  close(forkWrite);
  await readable(forkRead, brief);
  const b = Buffer.alloc(4);
  if (read(forkRead, b) !== 4) return undefined;
  const pid = view(b).getInt32(0, true);
  // Ours to reap, so the pid cannot be reused before this.
  const forked = new ChildProcess(pid, pidfdOpen(pid), brief === 0);
  // The parent exits right after it wrote the pid.
  const st = await parent.exitedSoon(brief);
  if (st.code !== 0) {
    pidfdSendSignal(forked.pidfd, SIG.KILL);
    await forked.exited;
    throw new SdError('ESPAWN', `spawn: the parent of a fork ended with ${st.code ?? `signal ${st.signal}`}`);
  }
  return forked;
}

/** Once `fd` is readable: within `brief` ms on this thread, else through the poller. */
async function readable(fd: number, brief: number): Promise<void> {
  if (brief > 0 && waitReadable(fd, brief)) return;
  await poller().readable(fd);
}

/** Switches the main thread's pid-for-children; returns an fd of the old one to switch back with. */
function enterPidNamespace(options: SpawnOptions, flags: bigint): number {
  if (flags & BigInt(CLONE.NEWPID))
    throw new SdError('EINVAL', 'spawn: pidNamespaceOf and CLONE_NEWPID exclude each other');
  const own = openNamespace('thread-self', 'pid_for_children');
  try {
    setns(options.pidNamespaceOf as number, CLONE.NEWPID);
  } catch (e) {
    closeQuietly(own);
    throw e;
  }
  return own;
}

function leavePidNamespace(own: number): void {
  try {
    setns(own, CLONE.NEWPID);
  } finally {
    closeQuietly(own);
  }
}

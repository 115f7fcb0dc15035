import { statSync } from 'node:fs';
import {
  AT,
  type ChildProcess,
  CLONE,
  closeQuietly,
  Data,
  O,
  open,
  pipe,
  readToEnd,
  S_IF,
  SdError,
  SIG,
  type Slot,
  SpawnError,
  SpawnProgram,
  setCapabilities,
  spawn,
  syscallNumber,
} from '@sd/sys';
import type { MachineCgroup } from '../registry/cgroup.js';

/**
 * Reads of files inside a machine (os-release, passwd, group), done so that
 * nothing the machine controls can block sd-machined, which makes every
 * system call on its one thread. O_NONBLOCK and an fstat keep a FIFO or a
 * device node out, but a FUSE file system inside the machine can stall even
 * a path lookup, and a lookup cannot be interrupted from the same thread.
 * So a short spawn program does the open and the read, and the daemon only
 * reads a pipe through its poller; the program is killed after a timeout.
 *
 * The reader stays in the host's PID namespace (nothing inside can see it),
 * has a memory of its own, joins the machine's user namespace (when it has
 * one) and mount namespace, roots itself at the leader's root, sits in the
 * machine's cgroup (its device policy applies to whatever it opens), and
 * drops every capability before it opens anything: it reads as the
 * machine's uid 0 without DAC override. Symlinks resolve inside the machine
 * (it is chrooted there), as systemd follows /etc/os-release → ../usr/lib.
 *
 * It writes struct statx of the opened file, then at most `max + 1` bytes of
 * it, to the pipe; the daemon refuses anything but a regular file of at most
 * `max` bytes. (A program cannot branch, so it reads a non-regular file too;
 * the open is non-blocking and the contents are thrown away.)
 */

export interface MachineRef {
  leader: number;
  /** A pidfd of the leader, open for the whole call. */
  pidfd: number;
  cgroup?: MachineCgroup | undefined;
}

/** How long a read inside a machine may take before it is abandoned. */
export const READ_TIMEOUT_MS = 700;

const STATX_SIZE = 256;
const CHUNK = 64 * 1024;
const STATX_TYPE = 0x1;
const STATX_SIZE_MASK = 0x200;

export interface ReadOptions {
  /** Largest file accepted. */
  max?: number;
  timeoutMs?: number;
}

/** Whether `pid` has a user namespace other than ours (setns to one's own is EINVAL). */
export function hasOwnUserNamespace(pid: number): boolean {
  return statSync(`/proc/${pid}/ns/user`).ino !== statSync('/proc/self/ns/user').ino;
}

/**
 * The reader's program (exported for the plan test): the files one after
 * the other, each to its own pipe. A failing open ends the program there.
 */
export function buildReadProgram(o: {
  pidfd: number;
  rootFd: number;
  userns: boolean;
  files: ReadonlyArray<{ path: string; out: number }>;
  max: number;
}): SpawnProgram {
  const p = new SpawnProgram().waitForParent();
  p.setns(o.pidfd, (o.userns ? CLONE.NEWUSER : 0) | CLONE.NEWNS);
  p.syscall('fchdir', p.sys.fchdir, [o.rootFd]);
  p.chroot('.');
  // The machine's root (in a user namespace our uid 0 is not mapped there).
  p.setgroups([], { ignoreErrno: true }).setresgid(0).setresuid(0);
  setCapabilities(p, { effective: 0n, permitted: 0n, inheritable: 0n });
  const stx = new Data(Buffer.alloc(STATX_SIZE), 'statx');
  // max + 1 bytes through one 64 KiB buffer, the read/write pairs unrolled
  // (a program has no loops); past the end a read gives 0 and its write nothing.
  const chunk = Math.min(o.max + 1, CHUNK);
  const contents = new Data(Buffer.alloc(chunk), 'contents');
  for (const { path, out } of o.files) {
    const fd = p.openat(AT.FDCWD, path, O.RDONLY | O.NONBLOCK | O.NOCTTY | O.CLOEXEC, 0, {
      label: `open ${path}`,
    });
    p.syscall('statx', syscallNumber('statx'), [fd, '', AT.EMPTY_PATH, STATX_TYPE | STATX_SIZE_MASK, stx]);
    p.syscall('write', p.sys.write, [out, stx, STATX_SIZE]);
    for (let done = 0; done < o.max + 1; done += chunk) {
      const n = p.syscall('read', p.sys.read, [fd, contents, chunk], { result: true });
      p.syscall('write', p.sys.write, [out, contents, n as Slot]);
    }
    p.close(fd);
    p.close(out);
  }
  p.exit(0);
  return p;
}

/**
 * The contents of a small regular file inside the machine; undefined when
 * it does not exist. Throws ETIMEDOUT when the machine's file system does
 * not answer in time, EBADF for anything but a regular file, EFBIG past `max`.
 */
export async function readFileInMachine(
  m: MachineRef,
  path: string,
  o: ReadOptions = {},
): Promise<string | undefined> {
  return (await readFilesInMachine(m, [path], o))[0];
}

/**
 * Several files with one reader (one process instead of one each). The
 * first that does not exist ends the reading: it and every later one come
 * back undefined (as for passwd, then group).
 */
export async function readFilesInMachine(
  m: MachineRef,
  paths: readonly string[],
  o: ReadOptions = {},
): Promise<Array<string | undefined>> {
  const max = o.max ?? 64 * 1024;
  const rootFd = open(`/proc/${m.leader}/root`, O.PATH | O.DIRECTORY | O.CLOEXEC);
  const pipes: Array<[number, number]> = [];
  let writeEndsOpen = true;
  try {
    for (const _ of paths) pipes.push(pipe(O.CLOEXEC));
    const outputs = pipes.map(([r]) => readToEnd(r, STATX_SIZE + max + 2));
    for (const out of outputs) out.catch(() => undefined);
    const program = buildReadProgram({
      pidfd: m.pidfd,
      rootFd,
      userns: hasOwnUserNamespace(m.leader),
      files: paths.map((path, i) => ({ path, out: pipes[i]![1] })),
      max,
    });
    const what = paths.join(' and ');
    let missing = paths.length;
    try {
      await runAbandonable(program, {
        what: `Reading ${what} in the machine`,
        timeoutMs: o.timeoutMs ?? READ_TIMEOUT_MS,
        beforeRun: (c) => {
          for (const [, w] of pipes) closeQuietly(w);
          writeEndsOpen = false;
          m.cgroup?.attach(c.pid);
        },
      });
    } catch (e) {
      if (!(e instanceof SpawnError)) throw e;
      const failed = paths.findIndex((p) => program.steps[e.step]?.label === `open ${p}`);
      if (failed < 0 || !['ENOENT', 'ENOTDIR'].includes(e.code))
        throw new SdError(e.code, `Cannot read ${what} in the machine: ${e.message}`, { cause: e });
      missing = failed;
    }
    const result: Array<string | undefined> = [];
    for (let i = 0; i < paths.length; i++)
      result.push(i < missing ? checkContents(paths[i]!, await outputs[i]!, max) : undefined);
    return result;
  } finally {
    closeQuietly(rootFd);
    // The read ends close themselves at EOF (readToEnd).
    if (writeEndsOpen) for (const [, w] of pipes) closeQuietly(w);
  }
}

/**
 * Runs a spawn program that ends in exit(0) (it must waitForParent()), and
 * gives up on it after `timeoutMs`: it is killed, and the call fails with
 * ETIMEDOUT even if the kill takes effect late (a process waiting in a file
 * system that does not answer). A failing step rejects with its SpawnError.
 */
export async function runAbandonable(
  program: SpawnProgram,
  o: { what: string; timeoutMs: number; beforeRun?: (c: ChildProcess) => void },
): Promise<void> {
  let child: ChildProcess | undefined;
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const timeout = () =>
    new SdError(
      'ETIMEDOUT',
      `${o.what} did not finish within ${o.timeoutMs} ms (a file system that does not answer?)`,
    );
  const work = (async () => {
    try {
      child = await spawn(program, {
        shareMemory: false,
        beforeRun: (c) => {
          child = c;
          if (timedOut) c.kill(SIG.KILL);
          else o.beforeRun?.(c);
        },
      });
    } catch (e) {
      throw timedOut ? timeout() : e;
    }
    const status = await child.exited;
    if (timedOut) throw timeout();
    if (status.code !== 0) throw new SdError('EIO', `${o.what} failed (${JSON.stringify(status)})`);
  })();
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      child?.kill(SIG.KILL);
      // A process stuck where even SIGKILL waits must not hold the call up.
      setTimeout(() => reject(timeout()), 200).unref();
    }, o.timeoutMs);
  });
  try {
    await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
    work.catch(() => undefined);
  }
}

/** What the reader wrote: struct statx, then the file's first max + 1 bytes. */
export function checkContents(path: string, data: Buffer, max: number): string {
  if (data.length < STATX_SIZE) throw new SdError('EIO', `Reading ${path} in the machine failed`);
  const mode = data.readUInt16LE(28);
  if ((mode & S_IF.MT) !== S_IF.REG)
    throw new SdError('EBADF', `${path} in the machine is not a regular file`);
  const size = data.readBigUInt64LE(40);
  if (size > BigInt(max) || data.length - STATX_SIZE > max)
    throw new SdError('EFBIG', `${path} in the machine is larger than ${max} bytes`);
  return data.toString('utf8', STATX_SIZE);
}

import { SYS } from '../arch/index.js';
import { CLD, P_PIDFD, WEXITED, WNOHANG } from '../constants.js';
import { SyscallError } from '../errors.js';
import { close } from '../fd/fd.js';
import { check, koffi, lazyFunc } from '../ffi/libc.js';
import { poller, waitReadableAny } from '../poller/poller.js';
import { view } from '../view.js';

const c = {
  pidfd_open: lazyFunc('syscall', 'long', ['long', 'int', 'uint']),
  pidfd_send_signal: lazyFunc('syscall', 'long', ['long', 'int', 'int', 'void *', 'uint']),
  waitid: lazyFunc('int waitid(int idtype, uint32_t id, _Out_ uint8_t *info, int options)'),
};

/** How a process ended: `code` when it exited, `signal` when a signal killed it. */
export interface ExitStatus {
  pid: number;
  code: number | null;
  signal: number | null;
}

/** The process's exit status as a shell reports it: the code, or 128 + signal. */
export function exitCodeOf(status: ExitStatus): number {
  return status.code ?? 128 + (status.signal ?? 0);
}

export function pidfdOpen(pid: number): number {
  return Number(check('pidfd_open', c.pidfd_open(SYS.pidfd_open, pid, 0)));
}

/** Sends a signal through a pidfd: it cannot hit a recycled pid. Returns false if the process is gone. */
export function pidfdSendSignal(pidfd: number, signal: number): boolean {
  if (c.pidfd_send_signal(SYS.pidfd_send_signal, pidfd, signal, null, 0) < 0) {
    const errno = koffi.errno();
    if (errno === 3 /* ESRCH */) return false;
    throw new SyscallError('pidfd_send_signal', errno);
  }
  return true;
}

/** Reaps the child behind `pidfd` if it has exited; undefined while it runs. */
export function waitPidfd(pidfd: number, block = false): ExitStatus | undefined {
  const info = Buffer.alloc(128);
  const r = c.waitid(P_PIDFD, pidfd, info, WEXITED | (block ? 0 : WNOHANG));
  if (r < 0) throw new SyscallError('waitid', koffi.errno());
  const v = view(info);
  const pid = v.getInt32(16, true);
  if (pid === 0) return undefined;
  const code = v.getInt32(8, true);
  const status = v.getInt32(24, true);
  return code === CLD.EXITED ? { pid, code: status, signal: null } : { pid, code: null, signal: status };
}

/**
 * A child process of ours known by its pidfd. Its exit is watched through
 * the poller, and the pidfd closed once the child is reaped. With `watch`
 * false, watching starts only when `exited` is asked for: a start whose
 * helpers all end within exitedSoon's wait then never needs the poller's
 * thread (the caller must ask, or the child stays a zombie).
 */
export class ChildProcess {
  readonly pid: number;
  readonly pidfd: number;
  #exited: Promise<ExitStatus> | undefined;
  private status: ExitStatus | undefined;

  constructor(pid: number, pidfd: number, watch = true) {
    this.pid = pid;
    this.pidfd = pidfd;
    if (watch) void this.exited;
  }

  /** Resolves with the exit status once the child has been reaped. */
  get exited(): Promise<ExitStatus> {
    this.#exited ??= this.status
      ? Promise.resolve(this.status)
      : new Promise((resolve, reject) => {
          poller().add(this.pidfd, () => {
            try {
              if (!this.#reap()) return;
              resolve(this.status as ExitStatus);
            } catch (e) {
              poller().remove(this.pidfd);
              reject(e);
            }
          });
        });
    return this.#exited;
  }

  /**
   * `exited`, after waiting up to `ms` on this thread for a child that is
   * about to end (a helper just released): reaped here, without the round
   * trip through the poller's thread. Only for a child not watched yet.
   * `beside`: an fd of the child's (its notify socket) served on this thread
   * meanwhile, by `onReadable` each time it is readable. A signal ends the
   * wait early, as the end of `ms` does: then the poller waits on.
   */
  exitedSoon(ms: number, beside?: { fd: number; onReadable: () => void }): Promise<ExitStatus> {
    const fds = beside ? [this.pidfd, beside.fd] : [this.pidfd];
    // Date.now, not performance.now: that global loads perf_hooks at its first use (~1 ms).
    const end = Date.now() + ms;
    for (let left = ms; !this.status && !this.#exited && left > 0; left = end - Date.now()) {
      const ready = waitReadableAny(fds, left);
      if (ready === 0) break;
      if (ready & 2) beside?.onReadable();
      // A pidfd is readable once its process has ended: reaped now, or (never seen) left to the poller.
      if (ready & 1) {
        this.#reap();
        break;
      }
    }
    return this.exited;
  }

  /** Reaps the child if it has exited: true then (its pidfd closed). */
  #reap(): boolean {
    const st = waitPidfd(this.pidfd);
    if (!st) return false;
    // Watched only once `exited` was asked for (a child reaped by exitedSoon never was).
    if (this.#exited) poller().remove(this.pidfd);
    close(this.pidfd);
    this.status = st;
    return true;
  }

  /** The exit status once the child has been reaped. */
  get exitStatus(): ExitStatus | undefined {
    return this.status;
  }

  /** Signals the child; false when it has already exited. */
  kill(signal = 15): boolean {
    if (this.status) return false;
    return pidfdSendSignal(this.pidfd, signal);
  }
}

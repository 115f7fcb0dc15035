import { SYS } from '../arch/index.js';
import { CLD, P_PIDFD, WEXITED, WNOHANG } from '../constants.js';
import { SyscallError } from '../errors.js';
import { close } from '../fd/fd.js';
import { check, koffi, lazyFunc } from '../ffi/libc.js';
import { poller } from '../poller/poller.js';

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
  const pid = info.readInt32LE(16);
  if (pid === 0) return undefined;
  const code = info.readInt32LE(8);
  const status = info.readInt32LE(24);
  return code === CLD.EXITED ? { pid, code: status, signal: null } : { pid, code: null, signal: status };
}

/**
 * A child process of ours known by its pidfd. Exit is observed through the
 * poller; the pidfd is closed once the child is reaped.
 */
export class ChildProcess {
  readonly pid: number;
  readonly pidfd: number;
  readonly exited: Promise<ExitStatus>;
  private status: ExitStatus | undefined;

  constructor(pid: number, pidfd: number) {
    this.pid = pid;
    this.pidfd = pidfd;
    this.exited = new Promise((resolve, reject) => {
      poller().add(pidfd, () => {
        try {
          const st = waitPidfd(pidfd);
          if (!st) return;
          poller().remove(pidfd);
          close(pidfd);
          this.status = st;
          resolve(st);
        } catch (e) {
          poller().remove(pidfd);
          reject(e);
        }
      });
    });
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

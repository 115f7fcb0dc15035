import { readFileSync } from 'node:fs';
import { closeQuietly, pidfdOpen, poller } from '@sd/sys';

/**
 * A machine's leader, watched through a pidfd: it becomes readable when the
 * process exits (also for a process that is not our child). The start time
 * from /proc/PID/stat tells a recycled pid from the process we registered.
 */

/** Field 22 of /proc/PID/stat (clock ticks since boot), or undefined when the process is gone. */
export function processStartTime(pid: number): bigint | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parentheses: count from the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const v = rest[19];
  return v === undefined ? undefined : BigInt(v);
}

export class LeaderWatch {
  readonly pid: number;
  readonly pidfd: number;
  readonly startTime: bigint;
  #closed = false;

  private constructor(pid: number, pidfd: number, startTime: bigint) {
    this.pid = pid;
    this.pidfd = pidfd;
    this.startTime = startTime;
  }

  /**
   * Opens a pidfd of `pid`; with `expectedStart`, only if the process is the
   * one that started then. Undefined when no such process is running.
   */
  static open(pid: number, expectedStart?: bigint): LeaderWatch | undefined {
    let fd: number;
    try {
      fd = pidfdOpen(pid);
    } catch {
      return undefined;
    }
    // Read after the pidfd exists: the pidfd then pins the process we checked.
    const start = processStartTime(pid);
    if (start === undefined || (expectedStart !== undefined && start !== expectedStart)) {
      closeQuietly(fd);
      return undefined;
    }
    return new LeaderWatch(pid, fd, start);
  }

  /** Calls `onExit` once when the process has exited. */
  watch(onExit: () => void): void {
    poller().add(this.pidfd, () => {
      this.close();
      onExit();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    poller().remove(this.pidfd);
    closeQuietly(this.pidfd);
  }

  get closed(): boolean {
    return this.#closed;
  }
}

/** The parent pid of `pid` (field 4 of /proc/PID/stat), or undefined when it is gone. */
export function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const v = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Processes that may never lead a machine: Terminate signals the leader's whole cgroup. */
export interface ForbiddenLeaders {
  /** The bus daemon's pid, when known. */
  busPid?: number;
}

/**
 * Why `pid` may not be a machine's leader, or undefined when it may: PID 1,
 * the daemon itself (and the process that started it) and the bus daemon
 * are refused, as systemd refuses them.
 */
export function leaderRefusal(pid: number, forbidden: ForbiddenLeaders = {}): string | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return `Invalid leader PID ${pid}`;
  if (pid === 1) return 'Refusing PID 1 as machine leader';
  if (pid === process.pid) return `Refusing sd-machined itself (PID ${pid}) as machine leader`;
  if (forbidden.busPid !== undefined && pid === forbidden.busPid)
    return `Refusing the bus daemon (PID ${pid}) as machine leader`;
  return undefined;
}

import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  type ChildProcess,
  closeQuietly,
  fcntl,
  O,
  open,
  pipe,
  readToEnd,
  SdError,
  SpawnProgram,
  spawn,
} from '@sd/sys';
import { BusError, DBUS_ERROR } from '../bus/errors.js';
import {
  decode,
  encode,
  errorFromWire,
  WORKER_CANCEL_FD,
  type WorkerReply,
  type WorkerRequest,
} from './protocol.js';

/**
 * Long operations (copies, image removal, clones, quota limits) run in a
 * worker process of their own, as systemd's machined forks one per
 * operation: the daemon's loop keeps answering while they work, and a
 * cancelled one is told to stop (its cancel pipe closed), cleans up after
 * itself and exits — or is killed when it does not within the grace time.
 * The worker is a Node entry of this package (machined-worker), started by
 * a spawn program (no JavaScript between clone and exec); no more than
 * `max` run at once.
 */

const F_DUPFD_CLOEXEC = 1030;
/** The workers' nice value. */
const WORKER_NICE = 10;

/** systemd's machined refuses more than 64 operations at once (OPERATIONS_MAX). */
export const OPERATIONS_MAX = 64;

export class OperationCancelledError extends SdError {
  constructor(why: string) {
    super('ECANCELED', why);
  }
}

export interface Operation<T> {
  readonly result: Promise<T>;
  /** Asks the worker to stop; it removes what it had written. */
  cancel(why: string): void;
}

function workerEntry(): string {
  const here = import.meta.url;
  // From source (tsx) the entry is a .ts next to machined.ts; built, a .js next to this chunk.
  return fileURLToPath(
    new URL(here.endsWith('.ts') ? '../machined-worker.ts' : './machined-worker.js', here),
  );
}

/** Node's options for the worker: ours; from source, with what runs TypeScript (a test runner may lack it). */
function nodeArgs(entry: string): string[] {
  const args = [...process.execArgv];
  if (entry.endsWith('.ts')) {
    if (!args.some((a) => a.startsWith('--conditions=sd-source'))) args.push('--conditions=sd-source');
    if (!args.includes('tsx')) args.push('--import', 'tsx');
  }
  return args;
}

/** An fd number above the ones a worker is given (0–5), so that placing them cannot clobber another. */
function high(fd: number): number {
  if (fd > WORKER_CANCEL_FD) return fd;
  const d = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  closeQuietly(fd);
  return d;
}

export class OperationPool {
  readonly max: number;
  readonly #running = new Set<ChildProcess>();
  /** How long a cancelled worker may take to clean up before SIGKILL. */
  readonly graceMs: number;

  constructor(max = OPERATIONS_MAX, graceMs = 10_000) {
    this.max = max;
    this.graceMs = graceMs;
  }

  get running(): number {
    return this.#running.size;
  }

  /** Starts `req` in a worker (with the machine's root as fd 4 when given: it is dup'd, the caller keeps its own). */
  start<T>(req: WorkerRequest, rootFd?: number): Operation<T> {
    if (this.#running.size >= this.max)
      throw new BusError(DBUS_ERROR.LimitsExceeded, `Too many ongoing operations (${this.max}).`);
    let cancelWrite: number | undefined;
    let cancelled: string | undefined;
    let child: ChildProcess | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const slot = {} as ChildProcess;
    // Counted from now: a burst of calls cannot start more than `max` while spawning.
    this.#running.add(slot);
    const closeCancel = () => {
      closeQuietly(cancelWrite);
      cancelWrite = undefined;
    };
    const result = (async (): Promise<T> => {
      const fds: number[] = [];
      let resultRead: number | undefined;
      try {
        const [rr, rw] = pipe(O.CLOEXEC);
        resultRead = rr;
        fds.push(high(rw));
        const [cr, cw] = pipe(O.CLOEXEC);
        cancelWrite = high(cw);
        const root = rootFd === undefined ? undefined : high(fcntl(rootFd, F_DUPFD_CLOEXEC, 10));
        if (root !== undefined) fds.push(root);
        fds.push(high(cr));
        const devnull = high(open('/dev/null', O.RDWR));
        fds.push(devnull);
        const entry = workerEntry();
        const argv = [process.execPath, ...nodeArgs(entry), entry, encode(req)];
        const env = Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
        const p = new SpawnProgram();
        p.setsid()
          .stdio([devnull, devnull, 2, fds[0], root, fds[root === undefined ? 1 : 2]])
          .closeOnExecFrom(WORKER_CANCEL_FD + 1)
          .resetSignals()
          .execve(process.execPath, argv, env);
        // A worker handles machines' files: it gets its own memory from the start, as every machined helper.
        child = await spawn(p, { shareMemory: false });
        // Background work: the daemon's own answers come first when the CPUs are busy.
        try {
          setPriority(child.pid, WORKER_NICE);
        } catch {}
        this.#running.delete(slot);
        this.#running.add(child);
        closeQuietly(...fds);
        fds.length = 0;
        if (cancelled !== undefined) this.#stop(child, closeCancel, (t) => (killTimer = t));
        const reading = readToEnd(resultRead, 1024 * 1024);
        // readToEnd closes it.
        resultRead = undefined;
        const out = await reading;
        await child.exited;
        const lines = out.toString('utf8').trim().split('\n');
        const last = lines[lines.length - 1];
        let reply: WorkerReply | undefined;
        try {
          reply = last ? decode<WorkerReply>(last) : undefined;
        } catch {}
        // A worker that finished before the cancel reached it did all of the operation (a copy
        // renamed into place): that is the answer, not ECANCELED over a complete result.
        if (reply?.ok) return reply.value as T;
        if (cancelled !== undefined) throw new OperationCancelledError(cancelled);
        if (!reply) throw new SdError('EIO', 'The worker process ended without an answer');
        throw errorFromWire(reply.error);
      } finally {
        closeQuietly(...fds, resultRead);
        closeCancel();
        if (killTimer) clearTimeout(killTimer);
        this.#running.delete(slot);
        if (child) this.#running.delete(child);
      }
    })();
    return {
      result,
      cancel: (why: string) => {
        if (cancelled !== undefined) return;
        cancelled = why;
        if (child) this.#stop(child, closeCancel, (t) => (killTimer = t));
      },
    };
  }

  #stop(child: ChildProcess, closeCancel: () => void, setTimer: (t: NodeJS.Timeout) => void): void {
    closeCancel();
    const t = setTimeout(() => child.kill(9), this.graceMs);
    t.unref();
    setTimer(t);
  }
}

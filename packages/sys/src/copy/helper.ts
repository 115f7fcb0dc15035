import { readFileSync } from 'node:fs';
import { SdError } from '../errors.js';
import { closeQuietly, open } from '../fd/fd.js';
import { rightsCmsg } from '../net/cmsg.js';
import { AF, MSG, SOCK } from '../net/sockaddr.js';
import { recvmsg, sendmsg, setsockopt, socketpair } from '../net/socket.js';
import { poller } from '../poller/poller.js';
import { type ChildProcess, waitPidfd } from '../proc/pidfd.js';
import { SpawnProgram } from '../spawn/program.js';
import { spawn } from '../spawn/spawn.js';
import { decodeWire, encodeWire, errorFromWire } from '../wire.js';
import { HELPER_SOCKET_FD, type JobReply } from './helper-wire.js';

/**
 * A second copying process: cp is single-threaded, and a copy's time is
 * mostly the kernel's work per file plus our JavaScript around each call,
 * so a second process on another core copying disjoint subtrees shortens
 * it. (koffi must not run in worker threads, and no JavaScript runs in a
 * forked child: the helper is a Node process of its own, exec'd by a spawn
 * program.) Jobs go over a SOCK_SEQPACKET pair, one message each, with the
 * directory fds they work on passed as SCM_RIGHTS — the helper never
 * resolves a path of the copy itself, so it sees exactly what the caller
 * opened. It runs one job at a time and answers each in order.
 *
 * The helper stays warm for the next copy (its start and its JIT warm-up
 * would otherwise be paid each time); it exits when our end of the socket
 * closes — when we exit, or when a failed copy aborts it.
 */

const SIGKILL = 9;
/** Jobs waiting in the helper before a directory is copied by the caller instead. */
const QUEUE = 2;
// At the first use: node:os is not loaded at start.
let cpuCount: number | undefined;
const cpus = () => (cpuCount ??= process.getBuiltinModule('node:os').availableParallelism());

/** How long one look at /proc/loadavg serves: a copy asks at every directory it meets. */
const RUNNABLE_TTL_MS = 20;
let runnableSample = { at: -Infinity, n: 0 };

/** The number of tasks runnable now (the 4th field of /proc/loadavg, "running/total"), read at most every 20 ms. */
function runnable(): number {
  const now = performance.now();
  if (now - runnableSample.at < RUNNABLE_TTL_MS) return runnableSample.n;
  let n = 0;
  try {
    n = Number.parseInt(readFileSync('/proc/loadavg', 'latin1').split(' ')[3] ?? '', 10) || 0;
  } catch {}
  runnableSample = { at: now, n };
  return n;
}
const PR_SET_PDEATHSIG = 1;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
/** How long a blocking wait for an answer lasts before the waiter looks at cancellation. */
const WAIT_SLICE_MS = 100;

function helperEntry(): string {
  const here = import.meta.url;
  // From source (tsx) the entry is a .ts next to this file; built, a .js next to this chunk.
  // node:url loaded here, not at import: a CLI bundle that never copies a tree would load it at every start.
  const { fileURLToPath } = process.getBuiltinModule('node:url');
  return fileURLToPath(new URL(here.endsWith('.ts') ? './helper-main.ts' : './copy-helper.js', here));
}

/** Node's options for the helper: ours; from source, what runs TypeScript (a test runner may lack it). */
function nodeArgs(entry: string): string[] {
  const args = process.execArgv.filter((a) => !a.startsWith('--cpu-prof') && !a.startsWith('--inspect'));
  if (entry.endsWith('.ts')) {
    if (!args.some((a) => a.startsWith('--conditions=sd-source'))) args.push('--conditions=sd-source');
    if (!args.includes('tsx')) args.push('--import', 'tsx');
  }
  return args;
}

export class CopyHelper {
  #sock: number | undefined;
  readonly #child: ChildProcess;
  #nextId = 1;
  /** Sent and not yet answered, in order. */
  readonly #pending: number[] = [];
  /** Answers not yet taken by their waiter. */
  readonly #answers = new Map<number, JobReply>();
  #dead: Error | undefined;
  /** Hand out jobs also when no CPU is free (tests that need the helper to work). */
  ignoreLoad = false;

  private constructor(sock: number, child: ChildProcess) {
    this.#sock = sock;
    this.#child = child;
    live.add(this);
  }

  /** The CPU time (user + system, ms) the helper has used so far (for benchmarks); 0 once it is gone. */
  get cpuMs(): number {
    try {
      const stat = readFileSync(`/proc/${this.#child.pid}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime and stime, fields 14 and 15, in clock ticks (USER_HZ: 100 on Linux).
      return (Number(f[11]) + Number(f[12])) * 10;
    } catch {
      return 0;
    }
  }

  /**
   * Starts a helper that also runs the job kinds of `modules` (module URLs
   * or paths exporting `copyJobs`). Resolves once it has exec'd; it loads
   * while the caller already copies (the jobs wait in the socket).
   */
  static async start(
    modules: readonly string[] = [],
    options: { ignoreLoad?: boolean } = {},
  ): Promise<CopyHelper> {
    const [mine, theirs] = socketpair(AF.UNIX, SOCK.SEQPACKET, 0, true);
    let devnull: number | undefined;
    try {
      devnull = open('/dev/null', 2 /* O_RDWR */);
      const entry = helperEntry();
      const argv = [process.execPath, ...nodeArgs(entry), entry, ...modules];
      const env = Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
      const p = new SpawnProgram();
      p.stdio([devnull, devnull, 2, theirs])
        .closeOnExecFrom(HELPER_SOCKET_FD + 1)
        // Gone with us: a copy whose caller died is not finished by anyone.
        .prctl(PR_SET_PDEATHSIG, SIGKILL)
        .resetSignals()
        .execve(process.execPath, argv, env);
      // A blocking wait gives up after a slice, so that the waiter can look at cancellation.
      const tv = Buffer.alloc(16);
      tv.writeBigInt64LE(BigInt(WAIT_SLICE_MS * 1000), 8);
      setsockopt(mine, SOL_SOCKET, SO_RCVTIMEO, tv);
      // Its own memory from the start, as every helper of a daemon that handles machines' files.
      const child = await spawn(p, { shareMemory: false });
      // Not watched: a warm helper must not keep our process alive (it is reaped when stopped).
      poller().remove(child.pidfd);
      const h = new CopyHelper(mine, child);
      h.ignoreLoad = options.ignoreLoad ?? false;
      return h;
    } catch (e) {
      closeQuietly(mine);
      throw e;
    } finally {
      closeQuietly(theirs, devnull);
    }
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Jobs sent so far. */
  get jobs(): number {
    return this.#nextId - 1;
  }

  get alive(): boolean {
    return this.#dead === undefined && this.#sock !== undefined;
  }

  /** Jobs sent and not yet answered. */
  get outstanding(): number {
    return this.#pending.length;
  }

  /**
   * Whether to hand the helper a job now: it has fewer than QUEUE waiting
   * (answers read first), and a CPU is free to run it: the kernel's count
   * of runnable tasks (/proc/loadavg), less us and the helper when it
   * works, is below the other CPUs'. On a busy machine a second process
   * only competes for the same cores and costs more CPU in all (contention
   * in the file system), so the copy then stays in one process.
   */
  wanted(): boolean {
    if (!this.alive) return false;
    if (this.#pending.length > 0) {
      if (this.poll()) this.takeDone();
      if (this.#pending.length >= QUEUE) return false;
    }
    return this.ignoreLoad || runnable() - 1 - (this.#pending.length > 0 ? 1 : 0) < cpus() - 1;
  }

  /** Sends a job with the fds it works on (dup'd into the helper: the caller closes its own). */
  submit(kind: string, args: unknown, fds: readonly number[] = []): number {
    if (!this.alive || this.#sock === undefined)
      throw this.#dead ?? new SdError('EPIPE', 'The copy helper has stopped');
    const id = this.#nextId++;
    const data = Buffer.from(encodeWire({ id, kind, args }));
    try {
      sendmsg(this.#sock, { data, control: fds.length ? [rightsCmsg(fds)] : undefined });
    } catch (e) {
      this.#fail(e);
      throw this.#dead;
    }
    this.#pending.push(id);
    return id;
  }

  /** Reads the answers already there without waiting; true when at least one came. */
  poll(): boolean {
    return this.#receive(false);
  }

  /** Waits for the answer to job `id`; throws its error. */
  wait(id: number): unknown {
    for (;;) {
      const a = this.#answers.get(id);
      if (a) {
        this.#answers.delete(id);
        if (!a.ok) throw errorFromWire(a.error, 'The copy helper');
        return a.value;
      }
      if (this.#dead) throw this.#dead;
      this.#receive(true);
    }
  }

  /**
   * Takes the answers of finished jobs: throws the first failure (the job
   * that failed: its error as the helper saw it). Returns their values.
   */
  takeDone(): unknown[] {
    const out: unknown[] = [];
    for (const [id, a] of this.#answers) {
      this.#answers.delete(id);
      if (!a.ok) throw errorFromWire(a.error, 'The copy helper');
      out.push(a.value);
    }
    if (this.#dead && this.#pending.length > 0) throw this.#dead;
    return out;
  }

  /**
   * Waits until every job sent has been answered; throws the first failure.
   * `between` runs every WAIT_SLICE_MS meanwhile (a cancellation check may throw).
   */
  drain(between?: () => void): unknown[] {
    const out: unknown[] = [];
    while (this.#pending.length > 0) {
      if (this.#dead) throw this.#dead;
      between?.();
      this.#receive(true);
      out.push(...this.takeDone());
    }
    out.push(...this.takeDone());
    return out;
  }

  #receive(block: boolean): boolean {
    const sock = this.#sock;
    if (sock === undefined || this.#dead) return false;
    let got = false;
    for (;;) {
      let m: ReturnType<typeof recvmsg>;
      try {
        // Peek the length first: a reply (a copy's hard links) may be larger than a usual buffer.
        const peek = recvmsg(sock, {
          size: 1,
          controlSize: 0,
          flags: MSG.PEEK | MSG.TRUNC | (block && !got ? 0 : MSG.DONTWAIT),
        });
        if (peek === null) return got;
        if (peek.length === 0) {
          this.#fail(new SdError('EPIPE', 'The copy helper ended before answering'));
          return got;
        }
        m = recvmsg(sock, { size: peek.length, controlSize: 0, flags: MSG.DONTWAIT });
      } catch (e) {
        this.#fail(e);
        return got;
      }
      if (m === null) return got;
      const reply = decodeWire<JobReply>(m.data.toString('utf8'));
      if (reply.id !== this.#pending[0]) {
        this.#fail(new SdError('EPROTO', `The copy helper answered job ${reply.id} out of turn`));
        return got;
      }
      this.#pending.shift();
      this.#answers.set(reply.id, reply);
      got = true;
    }
  }

  #fail(e: unknown): void {
    this.#dead ??=
      e instanceof Error ? e : new SdError('EPIPE', `The copy helper failed: ${String(e)}`, { cause: e });
  }

  /**
   * Kills the helper and waits until it is gone: after this nothing more is
   * written by it (a failed or cancelled copy removes what was written only
   * then).
   */
  abort(): void {
    if (this.#sock === undefined) return;
    this.#fail(new SdError('ECANCELED', 'The copy helper was stopped'));
    closeQuietly(this.#sock);
    this.#sock = undefined;
    this.#child.kill(SIGKILL);
    this.#reap();
  }

  /** Ends a helper between copies: its socket closed, it exits. */
  stop(): void {
    if (this.#sock === undefined) return;
    this.#fail(new SdError('ECANCELED', 'The copy helper was stopped'));
    closeQuietly(this.#sock);
    this.#sock = undefined;
    this.#reap();
  }

  #reap(): void {
    live.delete(this);
    try {
      waitPidfd(this.#child.pidfd, true);
    } catch {}
    closeQuietly(this.#child.pidfd);
  }
}

const shared = new Map<string, CopyHelper>();
const live = new Set<CopyHelper>();

/** The CPU time (ms) used so far by the helpers that are alive: a benchmark's before and after. */
export function copyHelpersCpuMs(): number {
  let ms = 0;
  for (const h of live) ms += h.cpuMs;
  return ms;
}

/**
 * The warm helper for these job modules, started when there is none (or
 * the last one stopped). One copy uses it at a time: callers take it with
 * `acquire` and give it back with `release`.
 */
export async function acquireCopyHelper(modules: readonly string[] = []): Promise<CopyHelper> {
  const key = modules.join('\n');
  const h = shared.get(key);
  if (h?.alive) {
    shared.delete(key);
    return h;
  }
  if (h) h.stop();
  return CopyHelper.start(modules);
}

/** Gives a helper back for the next copy (a dead or busy one is stopped instead). */
export function releaseCopyHelper(h: CopyHelper, modules: readonly string[] = []): void {
  const key = modules.join('\n');
  if (!h.alive || h.outstanding > 0 || shared.has(key)) {
    if (h.alive) h.stop();
    return;
  }
  shared.set(key, h);
}

/** Stops the warm helpers (tests, tools that want their children gone). */
export function stopCopyHelpers(): void {
  for (const h of shared.values()) h.stop();
  shared.clear();
}

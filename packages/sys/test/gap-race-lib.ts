import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AT } from '../src/constants.js';
import { RENAME, renameat2 } from '../src/copy/file.js';

// The pieces of the copy race tests (gap-copy-race.test.ts here, and
// machined's gap-machine-copy-race.test.ts): a source tree with many
// directories, the host's canary the attacker's links point at, the
// attacker process (gap-race-attacker.mjs) and the look at a copy's result.

export const SECRET = 'GAP-HOST-SECRET-7d1f';
export const MARKER = 'GAP-FIFO-MARKER';
/** The canary directories' mtime (seconds): a copy that stats the host through a link copies it. */
export const CANARY_MTIME = 1_111_111_111;
const ATTACKER = fileURLToPath(new URL('./gap-race-attacker.mjs', import.meta.url));

export interface RaceTree {
  dirs: string[];
  files: string[];
}

/**
 * The source: `tops` directories of `subs` directories of 8 small files,
 * a big file (the thread pool's path) in every other top, and one inode
 * linked from every top's first subdirectory (the helper's hard-link pass).
 */
export function makeTree(src: string, tops = 12, subs = 6): RaceTree {
  const dirs: string[] = [];
  const files: string[] = [];
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'gapshared'), 'shared\n');
  for (let t = 0; t < tops; t++) {
    const top = join(src, `gapd${t}`);
    dirs.push(top);
    for (let s = 0; s < subs; s++) {
      const sub = join(top, `gaps${s}`);
      mkdirSync(sub, { recursive: true });
      dirs.push(sub);
      for (let f = 0; f < 8; f++) {
        const p = join(sub, `gapf${f}`);
        writeFileSync(p, `${t}/${s}/${f}\n`.repeat(1 + f * 3));
        chmodSync(p, [0o644, 0o600, 0o755][f % 3]!);
        files.push(p);
      }
    }
    if (t % 2 === 0) {
      writeFileSync(join(top, 'gapbig'), Buffer.alloc(300 * 1024, 0x61 + (t % 26)));
      files.push(join(top, 'gapbig'));
    }
  }
  // In every subdirectory: the last pass sets the times of each (relinked) one the helper copied.
  for (const d of dirs) if (d.includes('/gaps')) linkSync(join(src, 'gapshared'), join(d, 'gaplink'));
  return { dirs, files };
}

/**
 * The directories to attack, the tops five times more often: the walk
 * hands those to the helper, so the swaps around a handover are there.
 */
export function targetDirs(tree: RaceTree): string[] {
  const tops = tree.dirs.filter((d) => !d.includes('/gaps'));
  return [...tops, ...tops, ...tops, ...tops, ...tops, ...tree.dirs];
}

/** The host side: a secret file, and subdirectories named as the source's (a walk through a link finds them). */
export function makeCanary(host: string, subs = 6): void {
  mkdirSync(host, { recursive: true });
  writeFileSync(join(host, 'secret.txt'), `${SECRET}\n`, { flag: 'wx' });
  for (let s = 0; s < subs; s++) {
    mkdirSync(join(host, `gaps${s}`));
    writeFileSync(join(host, `gaps${s}`, 'gapf0'), `${SECRET} below\n`);
    // Read at least once since written (relatime): a copy that read it moves its atime.
    utimesSync(join(host, `gaps${s}`, 'gapf0'), CANARY_MTIME - 1000, CANARY_MTIME);
    utimesSync(join(host, `gaps${s}`), CANARY_MTIME, CANARY_MTIME);
  }
  utimesSync(join(host, 'secret.txt'), CANARY_MTIME - 1000, CANARY_MTIME);
  utimesSync(host, CANARY_MTIME, CANARY_MTIME);
}

/**
 * Every entry below `dir` with its type, mode, size, mtime and a file's
 * atime (unless not `times`: a file read since moves it) and contents or
 * target (links never followed; files read with O_NOATIME).
 */
export function snapshot(dir: string, times = true): string {
  const fmt = times ? '%P %y %m %s %T@ %l\\n' : '%P %y %m %s %l\\n';
  const atimes = times ? ['(', '-type', 'f', '-printf', '%P atime %A@\\n', ')', ','] : [];
  const entries = execFileSync('find', [dir, ...atimes, '-printf', fmt])
    .toString()
    .split('\n')
    .sort()
    .join('\n');
  return `${entries}\n${createHash('sha256').update(readAll(dir)).digest('hex')}`;
}

function readAll(dir: string): string {
  let out = '';
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out += readAll(p);
    else if (st.isFile()) {
      const fd = openSync(p, constants.O_RDONLY | constants.O_NOATIME);
      try {
        out += `${p}:${readFileSync(fd, 'latin1')}\n`;
      } finally {
        closeSync(fd);
      }
    }
  }
  return out;
}

export interface Decoys {
  links: string[];
  fifos: string[];
  devs: string[];
}

/**
 * What the attacker swaps in, kept in `stash` on the source's file system:
 * links to each of `targets`, FIFOs and /dev/zero nodes.
 */
export function makeDecoys(stash: string, targets: readonly string[], n = 8): Decoys {
  mkdirSync(stash, { recursive: true });
  const links = targets.map((t, i) => {
    symlinkSync(t, join(stash, `link${i}`));
    return join(stash, `link${i}`);
  });
  const fifos: string[] = [];
  const devs: string[] = [];
  for (let i = 0; i < n; i++) {
    fifos.push(join(stash, `fifo${i}`));
    execFileSync('mkfifo', ['-m', '0644', fifos[i]!]);
    devs.push(join(stash, `zero${i}`));
    execFileSync('mknod', ['-m', '0644', devs[i]!, 'c', '1', '5']);
  }
  return { links, fifos, devs };
}

export interface Findings {
  /** Regular files in the copy with the host's secret, the FIFO marker, or NUL bytes (a device's data). */
  leaks: string[];
  /** Entries in the copy that show the copy met a swap: links to the host, FIFOs, devices, moved names. */
  seen: number;
}

/** Looks at every entry of the copy `dst` without following anything. */
export function inspect(dst: string, linkTargets: readonly string[]): Findings {
  const f: Findings = { leaks: [], seen: 0 };
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(dir, name);
      const st = lstatSync(p);
      // Every name of the source starts so: any other came from somewhere else (the host).
      if (!name.startsWith('gap')) f.leaks.push(`${p}: a name not in the source`);
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) {
        if (linkTargets.includes(readlinkSync(p))) f.seen++;
      } else if (st.isFIFO() || st.isCharacterDevice()) f.seen++;
      else if (st.isFile()) {
        const data = readFileSync(p);
        if (data.includes(SECRET)) f.leaks.push(`${p}: the host's secret`);
        if (data.includes(MARKER)) f.leaks.push(`${p}: a FIFO's data`);
        if (data.includes(0)) f.leaks.push(`${p}: NUL bytes (a device's data)`);
      }
      if (st.mtimeMs === CANARY_MTIME * 1000) f.leaks.push(`${p}: the host directory's times`);
    }
  };
  walk(dst);
  return f;
}

export interface AttackCounts {
  batches: number;
  dirLinks: number;
  dirSpecials: number;
  fileFifos: number;
  fileDevs: number;
  dstLinks: number;
  fifoReaders: number;
  failed: number;
}

export const swapsOf = (c: AttackCounts) =>
  c.dirLinks + c.dirSpecials + c.fileFifos + c.fileDevs + c.dstLinks;

/** The attacker process; `during` runs a copy while it attacks and returns its counts. */
export class Attacker {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: string[] = [];
  #waiters: Array<() => void> = [];

  constructor(config: {
    dirs: string[];
    files: string[];
    fifos: string[];
    devs: string[];
    links: string[];
    dst?: { parent: string; prefix: string; dirs: string[]; links: Array<{ p: string; to: string }> };
  }) {
    this.#child = spawn(process.execPath, [ATTACKER, JSON.stringify(config)], { stdio: 'pipe' });
    let buf = '';
    this.#child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        this.#lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      for (const w of this.#waiters.splice(0)) w();
    });
    this.#child.stderr.on('data', (d: Buffer) => process.stderr.write(d));
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  async #line(): Promise<string> {
    const deadline = Date.now() + 20_000;
    while (this.#lines.length === 0) {
      if (this.#child.exitCode !== null) throw new Error('the attacker exited');
      if (Date.now() > deadline) throw new Error('the attacker did not answer');
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return this.#lines.shift()!;
  }

  /** Runs `copy` while the attacker swaps; its counts of what it did meanwhile. */
  async during<T>(copy: () => Promise<T>): Promise<{ result: T; counts: AttackCounts }> {
    this.#child.stdin.write('go\n');
    if ((await this.#line()) !== 'going') throw new Error('the attacker did not start');
    const result = await copy();
    this.#child.stdin.write('stop\n');
    return { result, counts: JSON.parse(await this.#line()) as AttackCounts };
  }

  /** Ends it by its pid, and waits until it is gone. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const gone = new Promise((r) => this.#child.once('exit', r));
    this.#child.kill('SIGKILL');
    await gone;
  }
}

export interface RaceRun {
  copies: number;
  /** 'ok' or the error code, and how many copies ended so. */
  outcomes: Map<string, number>;
  /** What the attacker did while the copies ran, summed. */
  counts: AttackCounts;
  /** Swaps the copies met: entries in the copies that show one, and copies refused because of one. */
  seen: number;
  leaks: string[];
  slowestMs: number;
}

/**
 * Copies until `maxCopies` or `budgetMs`, each while `attacker` swaps;
 * looks at each copy (`dst`) and removes it (`clean`). `before` runs
 * first each time (a new helper when the last failure killed it).
 */
export async function runRace(o: {
  attacker: Attacker;
  maxCopies: number;
  budgetMs: number;
  before?: () => Promise<void>;
  copy: () => Promise<unknown>;
  dst: string;
  links: readonly string[];
  clean: () => void;
}): Promise<RaceRun> {
  const run: RaceRun = {
    copies: 0,
    outcomes: new Map(),
    counts: undefined!,
    seen: 0,
    leaks: [],
    slowestMs: 0,
  };
  const started = Date.now();
  while (run.copies < o.maxCopies && Date.now() - started < o.budgetMs) {
    await o.before?.();
    const t0 = Date.now();
    const { result, counts } = await o.attacker.during(() =>
      o.copy().then(
        () => 'ok',
        (e: unknown) => String((e as { code?: string }).code ?? e),
      ),
    );
    run.slowestMs = Math.max(run.slowestMs, Date.now() - t0);
    run.copies++;
    run.outcomes.set(result, (run.outcomes.get(result) ?? 0) + 1);
    // Refused because of a swap: a link or FIFO where the stat saw a directory (ENOTDIR, ELOOP), a
    // file replaced after its stat (EAGAIN), a directory where it saw a link (EINVAL), a device.
    if (['ENOTDIR', 'ELOOP', 'EAGAIN', 'EINVAL', 'EOPNOTSUPP'].includes(result)) run.seen++;
    // The trees are a few MB on a 64 MB file system: only a device read (/dev/zero) fills it.
    if (result === 'ENOSPC')
      run.leaks.push(`copy ${run.copies}: ENOSPC (a device read until the file system was full)`);
    if (run.counts === undefined) run.counts = counts;
    else for (const k of Object.keys(counts) as Array<keyof AttackCounts>) run.counts[k] += counts[k];
    const f = inspect(o.dst, o.links);
    run.seen += f.seen;
    run.leaks.push(...f.leaks);
    o.clean();
  }
  return run;
}

/** One line for the log: what ran, what the attacker did meanwhile, what the copies met. */
export function report(name: string, r: RaceRun, jobs: number): string {
  const c = r.counts;
  return (
    `${name}: ${r.copies} copies (${[...r.outcomes].map(([k, v]) => `${k}: ${v}`).join(', ')}), ` +
    `${jobs} helper jobs, slowest ${r.slowestMs} ms; swaps during the copies: ${swapsOf(c)} ` +
    `(dir->link ${c.dirLinks}, dir->fifo/dev ${c.dirSpecials}, file->fifo ${c.fileFifos}, ` +
    `file->/dev/zero ${c.fileDevs}, new dst dir->link ${c.dstLinks}), FIFOs found open ${c.fifoReaders}; ` +
    `swaps the copies met: ${r.seen}`
  );
}

/**
 * Swaps `paths` for links to `to` (a link each, made next to `stash`, one
 * renameat2 RENAME_EXCHANGE) — and back with `restore`: the race won at an
 * exact point (an `offloadable` callback) instead of by chance.
 */
export function swapper(stash: string, to: string) {
  const done: Array<[string, string]> = [];
  mkdirSync(stash, { recursive: true });
  return {
    swap(path: string): void {
      const link = join(stash, `swap${done.length}`);
      symlinkSync(to, link);
      renameat2(AT.FDCWD, path, AT.FDCWD, link, RENAME.EXCHANGE);
      done.push([path, link]);
    },
    get swapped(): string[] {
      return done.map(([p]) => p);
    },
    /** Where the directory swapped away from `path` is now. */
    movedTo(path: string): string {
      return done.find(([p]) => p === path)![1];
    },
    restore(): void {
      for (const [p, link] of done.splice(0).reverse()) {
        renameat2(AT.FDCWD, p, AT.FDCWD, link, RENAME.EXCHANGE);
        unlinkSync(link);
      }
    },
  };
}

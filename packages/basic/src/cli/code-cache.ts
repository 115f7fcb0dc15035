import { isAscii } from 'node:buffer';
import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import type { Module as NodeModule } from 'node:module';
import { dirname, join } from 'node:path';
import { Script, type ScriptOptions, constants as vmConstants } from 'node:vm';

/**
 * Runs a CLI's CommonJS bundle with a V8 code cache, so that a start
 * deserialises compiled code instead of parsing and compiling the bundle
 * (Node 20 has no module.enableCompileCache). A CLI's bin is a small
 * launcher that imports only this file (no @sd/sys, no koffi) and calls
 * runCached on its bundle.
 *
 * The cache lives next to the bundle (FILE.v8cache), or, where the package
 * directory cannot be written (a read-only /usr, a package installed by
 * another user), in $XDG_CACHE_HOME/sd/code-cache (~/.cache/...). It starts
 * with a stamp line (Node version, arch, V8 flags, and the bundle's size,
 * mtime and inode): V8 checks only the source's length, so a rebuilt bundle
 * of the same length must not meet the old code. A cache that is stale,
 * rejected by V8 or unreadable is rewritten at exit; one that is not owned
 * by this user or by the bundle's owner, or that others can write, is never
 * used (it would be code run as whoever starts the CLI). Every failure to
 * read or write a cache falls back silently to a plain compile.
 * SD_CODE_CACHE=0 turns it off.
 *
 * A bundle built already wrapped in Node's CommonJS function wrapper
 * (tools/build/cli-bundle.ts, prewrapCjs) is compiled as it is read: the
 * wrapping of a plain one copies the whole source into a new string on every
 * start (measured: ~0.85 ms of sd-nspawn's start, and a scavenge).
 *
 * A cache holds what the run that wrote it compiled: one written by
 * `--version` lacks everything a container start runs (measured: 17 ms more
 * CPU per start). So a launcher names the kind of run (`variant`), and each
 * kind keeps a cache of its own. Within a kind, serialising on every exit
 * (about 10 ms) would cost too much: the second line records the CPU time
 * the writing run spent in the bundle, and a run that spends clearly more
 * (half as much again, plus 10 ms) writes it again, holding the union of
 * both. Not a run of more than 20 s, whose idle code V8 may have flushed.
 * A cache written by a run that failed (a typo'd path, an option refused
 * late) lacks most of what a working run does, however long that failure
 * took: the first run that succeeds after it writes it again.
 */

const STAMP_VERSION = 'sd-v8cache 4';
/** A run longer than this never replaces a valid cache (see runCached's exit handler). */
const UPGRADE_MAX_SECONDS = 20;

export interface CodeCacheOptions {
  /** Where to look and write instead of FILE.v8cache and the user's cache directory (tests). */
  cacheFiles?: string[];
  /**
   * Which kind of run this is ('info' for --help/--version, 'run'...): each
   * kind has a cache of its own (FILE.KIND.v8cache), so that one kind never
   * leaves another with a cache lacking its code.
   */
  variant?: string;
  /** Runs longer than this (seconds) never replace a valid cache (default 20; tests). */
  upgradeMaxSeconds?: number;
  /** The `require` the bundle gets: a bin's own (see runCached). */
  require?: Require;
}

/** The cache file next to the bundle: the first choice, and the only one a start usually reads. */
function cacheFileBeside(file: string, variant?: string): string {
  return `${file}${variant === undefined ? '.v8cache' : `.${variant.replace(/[^a-z0-9-]/gi, '_')}.v8cache`}`;
}

/** The places a bundle's cache may live, first choice first. */
export function codeCacheFiles(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  variant?: string,
): string[] {
  const beside = cacheFileBeside(file, variant);
  // node:os only without HOME: loading it costs a start ~0.2 ms.
  const home = () => env.HOME || process.getBuiltinModule('node:os').homedir();
  const base = env.XDG_CACHE_HOME || join(home(), '.cache');
  return [beside, join(base, 'sd', 'code-cache', `${beside.replaceAll('/', '%')}`)];
}

/**
 * The kind of run a CLI's bin names to runCached (its cache of its own):
 * 'info' for --help, -h or --version; else the first argument that is one
 * of `verbs` (machinectl's list and status run different code), or
 * `defaultVerb` when none is; 'run' for a CLI without verbs. Arguments after
 * `--` are the container's or the remote command's, not ours.
 */
export function cacheVariant(
  argv: readonly string[],
  verbs: readonly string[] = [],
  defaultVerb = 'run',
): string {
  const end = argv.indexOf('--');
  const own = end < 0 ? argv : argv.slice(0, end);
  if (own.some((a) => a === '--help' || a === '-h' || a === '--version')) return 'info';
  if (verbs.length === 0) return 'run';
  return own.find((a) => verbs.includes(a)) ?? defaultVerb;
}

/** What a CLI's bin passes: its own `require`, which resolves from the bundle's directory too. */
type Require = (id: string) => unknown;

/**
 * node:module only where it is needed (a bundle not built prewrapped, a
 * caller without a `require`): loading it loads the ESM loader with it
 * (measured: 0.3-0.5 ms of every start).
 */
const nodeModule = () => process.getBuiltinModule('node:module') as typeof NodeModule;

/** The start of Node's CommonJS wrapper, which the bundles are built in (tools/build/cli-bundle.ts, prewrapCjs). */
const WRAPPER_START = '(function (exports, require, module, __filename, __dirname) { ';

interface Stamped {
  stamp: string;
  uid: number;
  size: number;
}

function stampOf(file: string, fd: number): Stamped {
  const st = fstatSync(fd);
  const flags = process.execArgv.join(' ');
  return {
    stamp: `${STAMP_VERSION} ${process.version} ${process.arch} ${st.size} ${st.mtimeMs} ${st.ino} ${file} ${flags}\n`,
    uid: st.uid,
    size: st.size,
  };
}

/**
 * The first `size` bytes of `fd` (fewer at an early end), read into `into`
 * when it is large enough. The source's buffer is reused for the cache: the
 * pages of a fresh half-megabyte buffer cost a start ~0.4 ms to fault in.
 */
function readAll(fd: number, size: number, into?: Buffer): Buffer {
  const buf = into && into.length >= size ? into : Buffer.allocUnsafeSlow(size);
  let n = 0;
  while (n < size) {
    const got = readSync(fd, buf, n, size - n, n);
    if (got === 0) break;
    n += got;
  }
  return buf.subarray(0, n);
}

interface Cache {
  code: Buffer;
  /** CPU time in µs the writing run spent in the bundle. */
  work: number;
  /** Whether the writing run exited with status 0. */
  ok: boolean;
}

/** A cache file's code, if it is ours to trust and matches the stamp. */
function readCache(path: string, stamp: string, bundleUid: number, scratch: Buffer): Cache | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const st = fstatSync(fd);
    const euid = process.geteuid?.() ?? -1;
    if (!st.isFile() || (st.uid !== euid && st.uid !== bundleUid) || (st.mode & 0o022) !== 0)
      return undefined;
    const all = readAll(fd, st.size, scratch);
    const nl = all.indexOf(10);
    if (nl < 0 || all.toString('utf8', 0, nl + 1) !== stamp) return undefined;
    const nl2 = all.indexOf(10, nl + 1);
    // "work MICROSECONDS ok|failed"
    const [word, us, status, extra] = all
      .toString('latin1', nl + 1, Math.max(nl2, nl + 1))
      .trimEnd()
      .split(' ');
    const work = Number(us);
    if (
      word !== 'work' ||
      String(work) !== us ||
      (status !== 'ok' && status !== 'failed') ||
      extra !== undefined
    )
      return undefined;
    return { code: all.subarray(nl2 + 1), work, ok: status === 'ok' };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The two header lines, padded with spaces to a multiple of 8 bytes: V8
 * copies cached data that does not start on a pointer-aligned address
 * (measured: ~0.5 ms of sd-nspawn's start for its 440 KB cache), and the code
 * follows the header in a buffer that starts aligned (readAll).
 */
function cacheHeader(stamp: string, work: string): Buffer {
  const line = Buffer.from(`${stamp}work ${work}`, 'utf8');
  const pad = (8 - ((line.length + 1) % 8)) % 8;
  return Buffer.concat([line, Buffer.from(`${' '.repeat(pad)}\n`)]);
}

/** Writes the cache to the first place that takes it: a private temporary file renamed over. */
function writeCache(paths: string[], stamp: string, work: string, data: Buffer): void {
  for (const path of paths) {
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(tmp, Buffer.concat([cacheHeader(stamp, work), data]), {
        mode: 0o644,
        flag: 'wx',
      });
      renameSync(tmp, path);
      return;
    } catch {
      try {
        unlinkSync(tmp);
      } catch {}
    }
  }
}

/**
 * `require` answering each id from its first answer: a bundle's top level
 * calls it once per module that imports a builtin (sd-nspawn's: 62 calls for
 * fs, path, events and koffi), and each call through Node's loader costs
 * ~6 µs. Node caches the modules, so the answers are the same objects.
 */
function onceEach(require: Require): Require {
  const answers = new Map<string, unknown>();
  return (id) => {
    if (answers.has(id)) return answers.get(id);
    const answer = require(id);
    answers.set(id, answer);
    return answer;
  };
}

/** Node's CommonJS function wrapper around `source`, unless the bundle was built inside it. */
function wrapped(source: string): string {
  if (source.startsWith(WRAPPER_START)) return source;
  const Module = nodeModule();
  // The wrapper of a Node that spells it otherwise, in case one does.
  if (source.startsWith((Module as unknown as { wrapper: [string, string] }).wrapper[0])) return source;
  // A hashbang is valid only at the very start of a script; inside the wrapper it becomes a comment
  // of the same length, so that line and column numbers stay those of the file.
  return Module.wrap(source.startsWith('#!') ? `//${source.slice(2)}` : source);
}

/**
 * Runs the CommonJS file `file` as Node's loader would, through the code
 * cache, and returns its `module.exports`. A bin passes its own `require`
 * (the bundle sits beside it, so both resolve alike); without one,
 * node:module makes one for `file`.
 */
export function runCached(file: string, options: CodeCacheOptions = {}): unknown {
  const start = process.cpuUsage();
  const fd = openSync(file, 'r');
  let source: string;
  let stamped: Stamped;
  let bytes: Buffer;
  try {
    stamped = stampOf(file, fd);
    bytes = readAll(fd, stamped.size);
    // An ASCII bundle becomes a one-byte string without UTF-8 decoding (V8 also scans those faster).
    source = bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8');
  } finally {
    closeSync(fd);
  }
  const { stamp, uid } = stamped;
  const enabled = process.env.SD_CODE_CACHE !== '0';
  // The other places only when the first has no cache for us: making their paths (node:path's
  // join, the home directory) costs a start ~0.2 ms.
  let paths = options.cacheFiles;
  const allPaths = () => (paths ??= codeCacheFiles(file, process.env, options.variant));
  let cached: Cache | undefined;
  if (enabled) {
    const first = paths ? paths[0] : cacheFileBeside(file, options.variant);
    if (first !== undefined) cached = readCache(first, stamp, uid, bytes);
    if (!cached)
      for (const p of allPaths().slice(1)) {
        cached = readCache(p, stamp, uid, bytes);
        if (cached) break;
      }
  }
  const script = new Script(wrapped(source), {
    filename: file,
    cachedData: cached?.code,
    importModuleDynamically: vmConstants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  } as ScriptOptions);
  if (enabled) {
    const stale = cached === undefined || script.cachedDataRejected === true;
    // Not the cache's bytes: they may share the source's buffer, and the exit handler needs only the figures.
    const written = cached && { work: cached.work, ok: cached.ok };
    cached = undefined;
    // At exit the cache also holds the functions this run compiled lazily, not only the top level.
    // on, not once: 'exit' comes once, and once's wrapper compiles at every start.
    process.on('exit', (status) => {
      const used = process.cpuUsage(start);
      const work = used.user + used.system;
      const ok = status === 0;
      // A long run (a booted container) has had its idle functions' bytecode
      // flushed: its cache could lack what a start runs. Only a stale cache is
      // replaced from one.
      if (!stale && written) {
        const grown = work > 1.5 * written.work + 10_000 || (ok && !written.ok);
        if (!grown || process.uptime() > (options.upgradeMaxSeconds ?? UPGRADE_MAX_SECONDS)) return;
      }
      try {
        writeCache(
          allPaths(),
          stamp,
          `${Math.round(work)} ${ok ? 'ok' : 'failed'}`,
          script.createCachedData(),
        );
      } catch {}
    });
  }
  // What the bundle's top level sees of its module: a bundle never reaches for more than exports.
  const mod = { exports: {}, id: file, filename: file, loaded: false };
  const require = onceEach(options.require ?? nodeModule().createRequire(file));
  const fn = script.runInThisContext() as (...a: unknown[]) => void;
  fn.call(mod.exports, mod.exports, require, mod, file, dirname(file));
  return mod.exports;
}

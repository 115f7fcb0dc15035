import { AT, O } from '../constants.js';
import { SdError } from '../errors.js';
import { closeQuietly, openat } from '../fd/fd.js';
import { mkdirat, unlinkat } from '../fs/at.js';
import { getRandom } from '../proc/random.js';
import { creationFacts } from './creation.js';
import type { ReflinkMode } from './data.js';
import { linkat, renameat2, utimensat } from './file.js';
import { acquireCopyHelper, type CopyHelper, releaseCopyHelper } from './helper.js';
import { type FullStat, statxFull } from './stat.js';
import { type Ctx, copyDir, finishFd, newCtx } from './tree-walk.js';

/**
 * Copies a directory tree the way `cp -a` does — modes, owners, times,
 * extended attributes (ACLs, file capabilities), symlinks, device nodes,
 * fifos, sockets and hard links — walking the source by directory fds with
 * O_NOFOLLOW so that nothing in it is followed. File data is a reflink
 * where the file system can share extents, else copy_file_range; large
 * files copy on the thread pool, several at once.
 *
 * With `parallel`, a helper process (helper.ts) copies whole subtrees
 * while this one copies the rest: a directory met while the helper has
 * room and a CPU is free (CopyHelper.wanted) is handed to it (its source
 * and new destination fds). Each side keeps the hard links it meets; an inode met
 * by both was copied twice, so a last pass here links the helper's names to
 * this side's copy (through a temporary name and a rename) and sets the
 * times of the directories that pass touched again.
 */

export interface CopyTreeOptions {
  /** 'auto' (default): reflink when possible; 'never': always copy bytes; 'always': fail without reflinks. */
  reflink?: ReflinkMode;
  /** Keep owners (default true; needs CAP_CHOWN for other users' files). */
  owners?: boolean;
  /** Copy extended attributes (default true). */
  xattrs?: boolean;
  /** `dst` exists already as an empty directory (a new btrfs subvolume): copy into it. */
  into?: boolean;
  /** Data copies on the thread pool at once (default 8). */
  concurrency?: number;
  /** Files at least this big copy on the thread pool; smaller ones synchronously (default 256 KiB). */
  asyncThreshold?: number;
  /**
   * Copy with a second process: true takes the warm shared helper (started
   * when there is none), or pass one. A failure stops it (SIGKILL, waited
   * for) before copyTree throws, so nothing writes to the copy after.
   */
  parallel?: boolean | CopyHelper;
  /** Which directories (source paths) may go to the helper; default: any below the top. */
  offloadable?: (path: string) => boolean;
}

export interface CopyTreeStats {
  directories: number;
  files: number;
  symlinks: number;
  /** Device nodes, fifos and sockets. */
  specials: number;
  hardlinks: number;
  bytes: bigint;
  reflinked: number;
}

/** A job of the helper: copy the directory of fds [src, dst] (contents, then its own metadata). */
export interface TreeJob {
  session: string;
  path: string;
  dstPath: string;
  options: Omit<CopyTreeOptions, 'parallel' | 'offloadable'>;
  creation: Ctx['creation'];
}

/** What the helper answers at the end of a copy. */
export interface TreeEnd {
  stats: CopyTreeStats;
  /** Every destination name of each multiply-linked source inode the helper met. */
  groups: Array<[string, string[]]>;
}

function offloader(ctx: Ctx, helper: CopyHelper, session: string, options: CopyTreeOptions) {
  const { parallel: _, offloadable, ...wire } = options;
  return (srcFd: number, dstFd: number, path: string, dstPath: string): boolean => {
    if ((offloadable && !offloadable(path)) || !helper.wanted()) return false;
    const job: TreeJob = { session, path, dstPath, options: wire, creation: ctx.creation };
    helper.submit('tree', job, [srcFd, dstFd]);
    return true;
  };
}

/** Replaces `path` by a hard link to `target`, atomically (a link under a temporary name, renamed over it). */
function relink(target: string, path: string): void {
  const slash = path.lastIndexOf('/');
  const tmp = `${path.slice(0, slash)}/.#sd-link-${getRandom(6).toString('hex')}`;
  linkat(AT.FDCWD, target, AT.FDCWD, tmp);
  try {
    renameat2(AT.FDCWD, tmp, AT.FDCWD, path);
  } catch (e) {
    try {
      unlinkat(AT.FDCWD, tmp);
    } catch {}
    throw e;
  }
}

/** Waits for the helper's jobs, adds its counts, and joins the hard links both sides met. */
function joinHelper(ctx: Ctx, helper: CopyHelper, session: string, dst: string): void {
  helper.drain();
  const end = helper.wait(helper.submit('tree-end', { session })) as TreeEnd;
  for (const k of Object.keys(ctx.stats) as Array<keyof CopyTreeStats>)
    (ctx.stats[k] as number | bigint) = (ctx.stats[k] as number) + (end.stats[k] as number);
  // The times of the directories relinked in, read before from the copy (which has the source's
  // already): never from the source by path, where its owner may have put a link to the host.
  const touched = new Map<string, FullStat>();
  for (const [key, names] of end.groups) {
    const target = ctx.links.get(key);
    if (target === undefined) continue;
    for (const name of names) {
      const dir = name.slice(0, name.lastIndexOf('/'));
      if (!touched.has(dir)) touched.set(dir, statxFull(AT.FDCWD, dir, AT.SYMLINK_NOFOLLOW));
      relink(target, name);
    }
    // The helper's copy of the inode is gone: counted as a link, not as a file.
    ctx.stats.files--;
    ctx.stats.hardlinks++;
    ctx.stats.bytes -= statxFull(AT.FDCWD, target, AT.SYMLINK_NOFOLLOW).size;
  }
  for (const [dir, st] of touched) {
    if (dir === dst) continue; // the top's times are set last anyway
    utimensat(AT.FDCWD, dir, st.atime, st.mtime);
  }
}

let sessions = 0;

/**
 * Copies the directory `src` to `dst` (which must not exist unless
 * `into`). On failure the partial copy stays for the caller to remove.
 */
export async function copyTree(
  src: string,
  dst: string,
  options: CopyTreeOptions = {},
): Promise<CopyTreeStats> {
  const ctx = newCtx(options);
  const s = openat(AT.FDCWD, src, O.RDONLY | O.DIRECTORY);
  let d: number | undefined;
  let helper: CopyHelper | undefined;
  const session = `${process.pid}-${++sessions}`;
  try {
    const st = statxFull(s, '', AT.EMPTY_PATH);
    if (!ctx.opts.into) mkdirat(AT.FDCWD, dst, 0o700);
    d = openat(AT.FDCWD, dst, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
    ctx.creation = creationFacts(d, !ctx.opts.into);
    if (options.parallel) {
      // A helper that cannot be started (no memory, no processes left) leaves the copy to this process.
      helper =
        options.parallel === true ? await acquireCopyHelper().catch(() => undefined) : options.parallel;
      if (helper) ctx.offload = offloader(ctx, helper, session, options);
    }
    try {
      await copyDir(ctx, s, d, src, dst);
    } finally {
      while (ctx.inflight.size > 0) await Promise.race(ctx.inflight);
    }
    if (ctx.failure !== undefined) throw ctx.failure;
    if (helper) joinHelper(ctx, helper, session, dst);
    // The top was not necessarily made by us (into): its owner and mode are always set.
    finishFd({ ...ctx, creation: undefined }, s, d, st, src, 0o700);
    ctx.stats.directories++;
    return ctx.stats;
  } catch (e) {
    // Nothing may write into the copy once the caller starts removing it.
    helper?.abort();
    if (e instanceof SdError) throw e;
    throw new SdError('ECOPY', `copy '${src}' -> '${dst}' failed: ${(e as Error).message}`, { cause: e });
  } finally {
    closeQuietly(s, d);
    if (helper && options.parallel === true) releaseCopyHelper(helper);
  }
}

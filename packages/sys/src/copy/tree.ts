import { AT, O, S_IF } from '../constants.js';
import { SdError, SyscallError } from '../errors.js';
import { closeQuietly, openat } from '../fd/fd.js';
import { fchmodat, fchownat, makedev, mkdirat, mknodat, readlinkat, symlinkat } from '../fs/at.js';
import { type Creation, createMode, creationFacts, madeMode, ownerAsCreated, settle } from './creation.js';
import { DataCopier, type ReflinkMode } from './data.js';
import { futimens, linkat, readDirFd, utimensat } from './file.js';
import { type FullStat, statxFull } from './stat.js';
import { fgetxattr, flistxattr, fsetxattr } from './xattr.js';

/**
 * Copies a directory tree the way `cp -a` does — modes, owners, times,
 * extended attributes (ACLs, file capabilities), symlinks, device nodes,
 * fifos, sockets and hard links — walking the source by directory fds with
 * O_NOFOLLOW so that nothing in it is followed. File data is a reflink
 * where the file system can share extents, else copy_file_range; large
 * files copy on the thread pool, several at once.
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

const ENOTSUP = 95;
const EPERM = 1;

interface Ctx {
  opts: Required<Omit<CopyTreeOptions, 'reflink'>>;
  data: DataCopier;
  stats: CopyTreeStats;
  links: Map<string, string>;
  inflight: Set<Promise<void>>;
  failure: unknown;
  statBuf: Buffer;
  direntBuf: Buffer;
  /** What new entries are when created (owner, umask), to leave out chown/chmod that change nothing. */
  creation: Creation | undefined;
}

function copyXattrs(ctx: Ctx, srcFd: number, dstFd: number, path: string): void {
  if (!ctx.opts.xattrs) return;
  for (const name of flistxattr(srcFd, path)) {
    const value = fgetxattr(srcFd, name, path);
    if (value === undefined) continue;
    try {
      fsetxattr(dstFd, name, value, 0, path);
    } catch (e) {
      // A target without xattr support (or without that namespace) keeps the data; cp -a does the same.
      if (!(e instanceof SyscallError && (e.errno === ENOTSUP || e.errno === EPERM))) throw e;
    }
  }
}

/**
 * Owner, mode, xattrs, times of an open destination created with mode
 * `created` — in this order: chown clears setuid and caps. Owner and mode
 * only when they differ from what the entry was created with.
 */
function finishFd(ctx: Ctx, srcFd: number, dstFd: number, st: FullStat, path: string, created: number): void {
  settle(
    ctx.creation,
    dstFd,
    { uid: ctx.opts.owners ? st.uid : undefined, gid: st.gid, mode: st.mode },
    created,
    path,
  );
  copyXattrs(ctx, srcFd, dstFd, path);
  futimens(dstFd, st.atime, st.mtime, path);
}

function copyFile(
  ctx: Ctx,
  srcDir: number,
  dstDir: number,
  name: string,
  st: FullStat,
  path: string,
  dstPath: string,
): void {
  if (st.nlink > 1) {
    const key = `${st.devMajor}:${st.devMinor}:${st.ino}`;
    const first = ctx.links.get(key);
    if (first !== undefined) {
      linkat(AT.FDCWD, first, dstDir, name);
      ctx.stats.hardlinks++;
      return;
    }
    ctx.links.set(key, dstPath);
  }
  const s = openat(srcDir, name, O.RDONLY | O.NOFOLLOW);
  // With the final permission bits at once when no chown must come first (the usual case).
  const created = createMode(ctx.creation, ctx.opts.owners ? st.uid : undefined, st.gid, st.mode);
  let d: number | undefined;
  try {
    d = openat(dstDir, name, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, created);
  } catch (e) {
    closeQuietly(s);
    throw e;
  }
  ctx.stats.files++;
  ctx.stats.bytes += st.size;
  const dstFd = d;
  const finish = (method: string): void => {
    if (method === 'reflink') ctx.stats.reflinked++;
    finishFd(ctx, s, dstFd, st, path, created);
  };
  if (st.size < BigInt(ctx.opts.asyncThreshold)) {
    try {
      finish(st.size === 0n ? 'empty' : ctx.data.copySync(s, dstFd, path, st.size));
    } finally {
      closeQuietly(s, dstFd);
    }
    return;
  }
  const p: Promise<void> = ctx.data
    .copyAsync(s, dstFd, path)
    .then(finish)
    .catch((e: unknown) => {
      ctx.failure ??= e;
    })
    .finally(() => {
      closeQuietly(s, dstFd);
      ctx.inflight.delete(p);
    });
  ctx.inflight.add(p);
}

function copyOther(ctx: Ctx, srcDir: number, dstDir: number, name: string, st: FullStat, path: string): void {
  const type = st.mode & S_IF.MT;
  if (type === S_IF.LNK) {
    symlinkat(readlinkat(srcDir, name), dstDir, name);
    ctx.stats.symlinks++;
  } else {
    mknodat(dstDir, name, type | (st.mode & 0o777), makedev(st.rdevMajor, st.rdevMinor));
    ctx.stats.specials++;
  }
  const mine = ownerAsCreated(ctx.creation, ctx.opts.owners ? st.uid : undefined, st.gid);
  if (!mine) fchownat(dstDir, name, st.uid, st.gid, AT.SYMLINK_NOFOLLOW);
  if (type !== S_IF.LNK && (!mine || madeMode(ctx.creation, st.mode) !== (st.mode & 0o7777)))
    fchmodat(dstDir, name, st.mode & 0o7777);
  utimensat(dstDir, name, st.atime, st.mtime, AT.SYMLINK_NOFOLLOW);
  void path;
}

async function copyDir(ctx: Ctx, srcFd: number, dstFd: number, path: string, dstPath: string): Promise<void> {
  const entries = readDirFd(srcFd, path, ctx.direntBuf);
  for (const { name } of entries) {
    if (ctx.failure !== undefined) return;
    const p = `${path}/${name}`;
    const st = statxFull(srcFd, name, AT.SYMLINK_NOFOLLOW, ctx.statBuf);
    const type = st.mode & S_IF.MT;
    if (type === S_IF.DIR) {
      mkdirat(dstFd, name, 0o700);
      const s = openat(srcFd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
      let d: number | undefined;
      try {
        d = openat(dstFd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
        await copyDir(ctx, s, d, p, `${dstPath}/${name}`);
        finishFd(ctx, s, d, st, p, 0o700);
        ctx.stats.directories++;
      } finally {
        closeQuietly(s, d);
      }
    } else if (type === S_IF.REG) {
      copyFile(ctx, srcFd, dstFd, name, st, p, `${dstPath}/${name}`);
      while (ctx.inflight.size >= ctx.opts.concurrency) await Promise.race(ctx.inflight);
    } else {
      copyOther(ctx, srcFd, dstFd, name, st, p);
    }
  }
}

/**
 * Copies the directory `src` to `dst` (which must not exist unless
 * `into`). On failure the partial copy stays for the caller to remove.
 */
export async function copyTree(
  src: string,
  dst: string,
  options: CopyTreeOptions = {},
): Promise<CopyTreeStats> {
  const ctx: Ctx = {
    opts: {
      owners: options.owners ?? true,
      xattrs: options.xattrs ?? true,
      into: options.into ?? false,
      concurrency: Math.max(1, options.concurrency ?? 8),
      asyncThreshold: options.asyncThreshold ?? 256 * 1024,
    },
    data: new DataCopier(options.reflink ?? 'auto'),
    stats: { directories: 0, files: 0, symlinks: 0, specials: 0, hardlinks: 0, bytes: 0n, reflinked: 0 },
    links: new Map(),
    inflight: new Set(),
    failure: undefined,
    statBuf: Buffer.alloc(256),
    direntBuf: Buffer.alloc(64 * 1024),
    creation: undefined,
  };
  const s = openat(AT.FDCWD, src, O.RDONLY | O.DIRECTORY);
  let d: number | undefined;
  try {
    const st = statxFull(s, '', AT.EMPTY_PATH);
    if (!ctx.opts.into) mkdirat(AT.FDCWD, dst, 0o700);
    d = openat(AT.FDCWD, dst, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
    ctx.creation = creationFacts(d, !ctx.opts.into);
    try {
      await copyDir(ctx, s, d, src, dst);
    } finally {
      while (ctx.inflight.size > 0) await Promise.race(ctx.inflight);
    }
    if (ctx.failure !== undefined) throw ctx.failure;
    // The top was not necessarily made by us (into): its owner and mode are always set.
    finishFd({ ...ctx, creation: undefined }, s, d, st, src, 0o700);
    ctx.stats.directories++;
    return ctx.stats;
  } catch (e) {
    if (e instanceof SdError) throw e;
    throw new SdError('ECOPY', `copy '${src}' -> '${dst}' failed: ${(e as Error).message}`, { cause: e });
  } finally {
    closeQuietly(s, d);
  }
}

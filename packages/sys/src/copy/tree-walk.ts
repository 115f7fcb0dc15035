import { AT, O, S_IF } from '../constants.js';
import { SdError, SyscallError } from '../errors.js';
import { closeQuietly, openat } from '../fd/fd.js';
import { fchmodat, fchownat, makedev, mkdirat, mknodat, readlinkat, symlinkat } from '../fs/at.js';
import { type Creation, createMode, madeMode, ownerAsCreated, settle } from './creation.js';
import { DataCopier } from './data.js';
import { futimens, linkat, readDirFd, utimensat } from './file.js';
import { type FullStat, isSameRegularFile, statxFull } from './stat.js';
import type { CopyTreeOptions, CopyTreeStats } from './tree.js';
import { fgetxattr, flistxattr, fsetxattr } from './xattr.js';

/** The walk of copyTree (tree.ts), shared with the copy helper process (tree-jobs.ts). */

const ENOTSUP = 95;
const EPERM = 1;

export interface Ctx {
  opts: Required<Omit<CopyTreeOptions, 'reflink' | 'parallel' | 'offloadable'>>;
  data: DataCopier;
  stats: CopyTreeStats;
  links: Map<string, string>;
  inflight: Set<Promise<void>>;
  failure: unknown;
  statBuf: Buffer;
  direntBuf: Buffer;
  /** What new entries are when created (owner, umask), to leave out chown/chmod that change nothing. */
  creation: Creation | undefined;
  /** In a helper: every destination path of each multiply-linked source inode, for the final pass. */
  groups?: Map<string, string[]>;
  /**
   * Hands the copy of directory `srcFd` into the new directory `dstFd`
   * (contents and its own metadata) to the helper; false when it is busy.
   */
  offload?: (srcFd: number, dstFd: number, path: string, dstPath: string) => boolean;
  /** True when the copy must stop (the helper's caller went away). */
  aborted?: () => boolean;
}

export function newCtx(options: CopyTreeOptions): Ctx {
  return {
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
export function finishFd(
  ctx: Ctx,
  srcFd: number,
  dstFd: number,
  st: FullStat,
  path: string,
  created: number,
): void {
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
    const group = ctx.groups?.get(key);
    if (group) group.push(dstPath);
    else ctx.groups?.set(key, [dstPath]);
    const first = ctx.links.get(key);
    if (first !== undefined) {
      linkat(AT.FDCWD, first, dstDir, name);
      ctx.stats.hardlinks++;
      return;
    }
    ctx.links.set(key, dstPath);
  }
  // Checked again once open (as cp does): a FIFO or a device node the tree's owner swapped in
  // after the stat is neither waited on (O_NONBLOCK) nor read.
  const s = openat(srcDir, name, O.RDONLY | O.NOFOLLOW | O.NONBLOCK | O.NOCTTY);
  try {
    if (!isSameRegularFile(s, st, ctx.statBuf))
      throw new SdError('EAGAIN', `Refusing to copy '${path}': it was replaced while being copied`);
  } catch (e) {
    closeQuietly(s);
    throw e;
  }
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

export async function copyDir(
  ctx: Ctx,
  srcFd: number,
  dstFd: number,
  path: string,
  dstPath: string,
): Promise<void> {
  const entries = readDirFd(srcFd, path, ctx.direntBuf);
  for (const { name } of entries) {
    if (ctx.failure !== undefined) return;
    if (ctx.aborted?.()) throw new SdError('ECANCELED', `Copy of '${path}' stopped`);
    const p = `${path}/${name}`;
    const st = statxFull(srcFd, name, AT.SYMLINK_NOFOLLOW, ctx.statBuf);
    const type = st.mode & S_IF.MT;
    if (type === S_IF.DIR) {
      mkdirat(dstFd, name, 0o700);
      const s = openat(srcFd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
      let d: number | undefined;
      try {
        d = openat(dstFd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
        if (ctx.offload?.(s, d, p, `${dstPath}/${name}`)) continue;
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

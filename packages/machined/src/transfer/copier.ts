import {
  AT,
  type CopyHelper,
  type Creation,
  closeQuietly,
  copyFileRange,
  createMode,
  creationFacts,
  DataCopier,
  ERRNO,
  fchmodat,
  fchownat,
  futimens,
  getRandom,
  madeMode,
  mkdirat,
  mknodat,
  O,
  openat,
  ownerAsCreated,
  RENAME,
  read,
  readDirFd,
  readlinkat,
  renameat2,
  S_IF,
  SdError,
  SyscallError,
  settle,
  statxFull,
  symlinkat,
  unlinkat,
  withFsIds,
  writeAll,
} from '@sd/sys';
import type { IdMapSpec } from './ids.js';

/** The walk of CopyToMachine / CopyFromMachine below their top (copy.ts): see there. */

export interface CopyOptions {
  /** Replace existing files (the …WithFlags bit 0). */
  replace: boolean;
  /** Maps a source owner to the destination's. */
  mapId: (id: number) => number;
  /**
   * Who creates the new files (fsuid/fsgid) before they are chowned: the
   * machine's root when copying into a machine with a UID shift, so that an
   * idmapped mount maps the new inode (root of the host it would not).
   */
  creator?: { uid: number; gid: number };
  /** Enter other file systems below the source (default false, as systemd's copies). */
  crossFileSystems?: boolean;
  /** Polled between files and data chunks: true stops the copy (CopyCancelledError) and cleans up. */
  cancelled?: () => boolean;
  /**
   * A second process copying subtrees while this one copies the rest
   * (@sd/sys CopyHelper, started with this package's copy-jobs module);
   * used only with `idMap`, which it rebuilds `mapId` from.
   */
  parallel?: CopyHelper;
  idMap?: IdMapSpec;
  /** Which directories (source paths) may go to the helper; default: any below the top. */
  offloadable?: (path: string) => boolean;
}

/** A subtree for the copy helper (copy-jobs.ts): the directory of fds [source, new destination]. */
export interface MachineJob {
  path: string;
  dstPath: string;
  rootDev: string;
  creation: Creation | undefined;
  creator?: { uid: number; gid: number };
  crossFileSystems?: boolean;
  idMap: IdMapSpec;
}

export class CopyCancelledError extends SdError {
  constructor(path: string) {
    super('ECANCELED', `Copy to '${path}' cancelled`);
  }
}

/** An existing directory, and a name in it. */
export interface Place {
  dirFd: number;
  name: string;
  /** For messages. */
  path: string;
  /** The source itself, already open (the top of a copy). */
  fd?: number;
  /** The target of the source when it is a symbolic link (the top of a copy, read when it was opened). */
  link?: string;
}

const { EEXIST } = ERRNO;
const { ENOENT } = ERRNO;
const CHUNK = 64 * 1024 * 1024;

export function splitPath(path: string): { parent: string; name: string } {
  const trimmed = path.replace(/\/+$/, '');
  const slash = trimmed.lastIndexOf('/');
  const name = trimmed.slice(slash + 1);
  if (name === '' || name === '.' || name === '..')
    throw new SdError('EINVAL', `Path '${path}' does not name a file`);
  return { parent: slash <= 0 ? '/' : trimmed.slice(0, slash), name };
}

/** Runs `fn`, naming `path` in a syscall error that lacks it (or names only the last component). */
export function on<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SyscallError && e.path !== path)
      throw new SyscallError(e.syscall, e.errno, path, { cause: e });
    throw e;
  }
}

const tempName = (name: string) => `.#sd-copy-${name.slice(0, 64)}-${getRandom(6).toString('hex')}`;

/** Removes `name` in `dirFd` and, for a directory, everything below it (never following links). */
export function removeAt(dirFd: number, name: string, path: string): void {
  const st = on(path, () => statxFull(dirFd, name, AT.SYMLINK_NOFOLLOW));
  if ((st.mode & S_IF.MT) !== S_IF.DIR) {
    on(path, () => unlinkat(dirFd, name));
    return;
  }
  const fd = on(path, () => openat(dirFd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW));
  try {
    for (const e of readDirFd(fd, path)) removeAt(fd, e.name, `${path}/${e.name}`);
  } finally {
    closeQuietly(fd);
  }
  on(path, () => unlinkat(dirFd, name, AT.REMOVEDIR));
}

function tryStat(dirFd: number, name: string, path: string) {
  try {
    return statxFull(dirFd, name, AT.SYMLINK_NOFOLLOW);
  } catch (e) {
    if (e instanceof SyscallError && e.errno === ENOENT) return undefined;
    throw new SyscallError('statx', (e as SyscallError).errno ?? 0, path, { cause: e });
  }
}

export class Copier {
  readonly data = new DataCopier('auto');
  readonly statBuf = Buffer.alloc(256);
  rootDev = '';
  /**
   * What entries are when created in the directory being filled (owner,
   * umask): chown/chmod that would change nothing are left out. Unknown
   * (undefined) when a creator's fs ids are used: then everything is set.
   */
  creation: Creation | undefined;
  constructor(readonly opts: CopyOptions) {}

  /** The creation facts for new entries in the existing directory `fd`. */
  factsFor(fd: number, path: string): Creation | undefined {
    const c = this.opts.creator;
    if (c && (c.uid !== 0 || c.gid !== 0)) return undefined;
    return on(path, () => creationFacts(fd, false));
  }

  check(path: string): void {
    if (this.opts.cancelled?.()) throw new CopyCancelledError(path);
  }

  /** Creates a directory entry as `creator`. */
  create<T>(fn: () => T): T {
    const c = this.opts.creator;
    return c && (c.uid !== 0 || c.gid !== 0) ? withFsIds(c.uid, c.gid, fn) : fn();
  }

  /**
   * Copies `src` (a name in a directory fd; '.' for the directory itself)
   * to `dst`, merging into an existing directory, else through a
   * temporary name renamed into place.
   */
  copyTop(src: Place, dst: Place): void {
    const st = on(src.path, () =>
      src.fd !== undefined
        ? statxFull(src.fd, '', AT.EMPTY_PATH)
        : statxFull(src.dirFd, src.name, AT.SYMLINK_NOFOLLOW),
    );
    this.rootDev = `${st.devMajor}:${st.devMinor}`;
    this.creation = this.factsFor(dst.dirFd, dst.path);
    this.place(src, st, dst);
  }

  place(src: Place, st: ReturnType<typeof statxFull>, dst: Place): void {
    this.check(dst.path);
    const type = st.mode & S_IF.MT;
    const exists = tryStat(dst.dirFd, dst.name, dst.path);
    const existsType = exists ? exists.mode & S_IF.MT : undefined;
    if (exists && type === S_IF.DIR && existsType === S_IF.DIR) {
      this.mergeDir(src, st, dst);
      return;
    }
    if (exists && !this.opts.replace)
      throw new SdError('EEXIST', `Failed to copy: '${dst.path}' exists already (replace not requested)`, {
        cause: new SyscallError('copy', EEXIST, dst.path),
      });
    const tmp = tempName(dst.name);
    const tmpPlace = { dirFd: dst.dirFd, name: tmp, path: `${dst.path.slice(0, -dst.name.length)}${tmp}` };
    try {
      this.make(src, st, tmpPlace);
      // What the helper copies is part of the temporary tree: complete before it is renamed.
      this.drainHelper(dst.path);
      // A file or link is replaced atomically; a directory on either side must go first.
      // As the creator: on an idmapped mount host root may not rename or unlink (EOVERFLOW).
      if (exists && (type === S_IF.DIR || existsType === S_IF.DIR))
        this.create(() => removeAt(dst.dirFd, dst.name, dst.path));
      this.create(() =>
        on(dst.path, () => renameat2(dst.dirFd, tmp, dst.dirFd, dst.name, exists ? 0 : RENAME.NOREPLACE)),
      );
    } catch (e) {
      // Nothing may write into the temporary tree once it is being removed.
      this.opts.parallel?.abort();
      try {
        if (tryStat(dst.dirFd, tmp, tmpPlace.path))
          this.create(() => removeAt(dst.dirFd, tmp, tmpPlace.path));
      } catch {}
      throw e;
    }
  }

  /** Copies the entries of directory `src` into the existing directory `dst`, then its metadata. */
  mergeDir(src: Place, st: ReturnType<typeof statxFull>, dst: Place): void {
    const out = on(dst.path, () => openat(dst.dirFd, dst.name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW));
    const outer = this.creation;
    try {
      // An existing directory may be setgid or carry a default ACL: new entries there are what it makes them.
      this.creation = this.factsFor(out, dst.path);
      this.children(src, out, dst.path, (child, cst, to) => this.place(child, cst, to));
      this.finish(out, st, dst.path, undefined);
    } finally {
      this.creation = outer;
      closeQuietly(out);
    }
  }

  /** Walks the entries of directory `src`, calling `each` for the ones to copy into `outFd`. */
  children(
    src: Place,
    outFd: number,
    outPath: string,
    each: (child: Place, st: ReturnType<typeof statxFull>, to: Place) => void,
  ): void {
    const dir = on(src.path, () =>
      openat(src.fd ?? src.dirFd, src.fd !== undefined ? '.' : src.name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW),
    );
    try {
      const base = src.path === '/' ? '' : src.path;
      for (const e of readDirFd(dir, src.path)) {
        const path = `${base}/${e.name}`;
        const cst = on(path, () => statxFull(dir, e.name, AT.SYMLINK_NOFOLLOW));
        const child = { dirFd: dir, name: e.name, path };
        const to = { dirFd: outFd, name: e.name, path: `${outPath === '/' ? '' : outPath}/${e.name}` };
        // Another file system below the source (the machine's /proc, /sys, a bind mount):
        // its mount point is copied as an empty directory, its contents are not.
        if (!this.opts.crossFileSystems && `${cst.devMajor}:${cst.devMinor}` !== this.rootDev) {
          if ((cst.mode & S_IF.MT) === S_IF.DIR && !tryStat(outFd, e.name, to.path)) {
            this.create(() => on(to.path, () => mkdirat(outFd, e.name, 0o700)));
            const fd = on(to.path, () => openat(outFd, e.name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW));
            try {
              this.finish(fd, cst, to.path, 0o700);
            } finally {
              closeQuietly(fd);
            }
          }
          continue;
        }
        each(child, cst, to);
      }
    } finally {
      closeQuietly(dir);
    }
  }

  /** Owner, mode and times of `fd`, created with mode `created` (undefined: not by this copy, all set). */
  finish(fd: number, st: ReturnType<typeof statxFull>, path: string, created: number | undefined): void {
    const owner = { uid: this.opts.mapId(st.uid), gid: this.opts.mapId(st.gid), mode: st.mode };
    on(path, () => settle(created === undefined ? undefined : this.creation, fd, owner, created ?? 0, path));
    futimens(fd, st.atime, st.mtime, path);
  }

  /** Creates `dst` (which does not exist) as a copy of `src`. */
  make(src: Place, st: ReturnType<typeof statxFull>, dst: Place): void {
    this.check(dst.path);
    const type = st.mode & S_IF.MT;
    const uid = this.opts.mapId(st.uid);
    const gid = this.opts.mapId(st.gid);
    if (type === S_IF.DIR) {
      this.create(() => on(dst.path, () => mkdirat(dst.dirFd, dst.name, 0o700)));
      const out = on(dst.path, () => openat(dst.dirFd, dst.name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW));
      try {
        // Below the top, a directory may go to the helper: its contents and its own metadata.
        if (src.fd === undefined && this.offload(src, out, dst)) return;
        this.children(src, out, dst.path, (child, cst, to) => this.make(child, cst, to));
        this.finish(out, st, dst.path, 0o700);
      } finally {
        closeQuietly(out);
      }
    } else if (type === S_IF.REG) {
      // O_NONBLOCK and the type check after open: a FIFO swapped in cannot hang the copy.
      const input =
        src.fd ??
        on(src.path, () => openat(src.dirFd, src.name, O.RDONLY | O.NOFOLLOW | O.NONBLOCK | O.NOCTTY));
      let out: number | undefined;
      try {
        // With its own permission bits at once when no chown must come first.
        const created = createMode(this.creation, uid, gid, st.mode);
        out = this.create(() =>
          on(dst.path, () => openat(dst.dirFd, dst.name, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, created)),
        );
        this.copyData(input, out, src.path, dst.path, st.size);
        this.finish(out, st, dst.path, created);
      } finally {
        closeQuietly(src.fd === undefined ? input : undefined, out);
      }
    } else if (type === S_IF.LNK) {
      const target = src.link ?? on(src.path, () => readlinkat(src.dirFd, src.name));
      this.create(() => on(dst.path, () => symlinkat(target, dst.dirFd, dst.name)));
      if (!ownerAsCreated(this.creation, uid, gid))
        on(dst.path, () => fchownat(dst.dirFd, dst.name, uid, gid, AT.SYMLINK_NOFOLLOW));
    } else if (type === S_IF.FIFO) {
      this.create(() => on(dst.path, () => mknodat(dst.dirFd, dst.name, S_IF.FIFO | (st.mode & 0o777))));
      const mine = ownerAsCreated(this.creation, uid, gid);
      if (!mine) on(dst.path, () => fchownat(dst.dirFd, dst.name, uid, gid, AT.SYMLINK_NOFOLLOW));
      if (!mine || madeMode(this.creation, st.mode) !== (st.mode & 0o7777))
        on(dst.path, () => fchmodat(dst.dirFd, dst.name, st.mode & 0o7777));
    } else {
      // Device nodes and sockets are not copied between host and machine.
      throw new SdError('EOPNOTSUPP', `Refusing to copy '${src.path}': not a file, directory, link or fifo`);
    }
  }

  /** Hands directory `src`, made as `out`, to the helper when it has room; false to copy it here. */
  offload(src: Place, out: number, dst: Place): boolean {
    const h = this.opts.parallel;
    const idMap = this.opts.idMap;
    if (!h || !idMap || (this.opts.offloadable && !this.opts.offloadable(src.path)) || !h.wanted())
      return false;
    const dir = on(src.path, () => openat(src.dirFd, src.name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW));
    try {
      const job: MachineJob = {
        path: src.path,
        dstPath: dst.path,
        rootDev: this.rootDev,
        creation: this.creation,
        creator: this.opts.creator,
        crossFileSystems: this.opts.crossFileSystems,
        idMap,
      };
      h.submit('machine', job, [dir, out]);
    } finally {
      closeQuietly(dir);
    }
    return true;
  }

  /** Waits for the helper's jobs, still answering cancellation. */
  drainHelper(path: string): void {
    const h = this.opts.parallel;
    if (!h || h.outstanding === 0) return;
    h.drain(() => this.check(path));
  }

  /** The bytes: a reflink, else copy_file_range, else read/write — in chunks, checking for cancellation. */
  copyData(input: number, out: number, srcPath: string, dstPath: string, size: bigint): void {
    // A reflink or copy_file_range works on regular files only: when either does, `input` is one.
    if (this.data.tryClone(input, out, dstPath)) return;
    try {
      // A file that has reached the size it had is done without the call that returns 0.
      for (let done = 0n; ; ) {
        this.check(dstPath);
        const n = copyFileRange(input, out, CHUNK, dstPath);
        if (n <= 0) return;
        done += BigInt(n);
        if (done >= size && size > 0n) return;
      }
    } catch (e) {
      // Not supported between these two (another kind of file system): copy through memory.
      if (!(e instanceof SyscallError) || ![18, 22, 38, 95, 9, 21].includes(e.errno)) throw e;
    }
    // Through memory only what still is a regular file (O_NONBLOCK kept a FIFO swapped in from hanging).
    const real = on(srcPath, () => statxFull(input, '', AT.EMPTY_PATH));
    if ((real.mode & S_IF.MT) !== S_IF.REG)
      throw new SdError('EAGAIN', `Refusing to copy '${srcPath}': it changed while being copied`);
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let i = 0; ; i++) {
      if (i % 64 === 0) this.check(dstPath);
      const n = on(srcPath, () => read(input, buf));
      if (n === 0) return;
      if (n < 0) throw new SdError('EAGAIN', `Reading '${srcPath}' would block: not a regular file`);
      on(dstPath, () => writeAll(out, buf.subarray(0, n)));
    }
  }
}

import {
  AT,
  closeQuietly,
  ERRNO,
  fchmodat,
  fchownat,
  linkat,
  makedev,
  mkdirat,
  mkdirInRoot,
  mknodat,
  O,
  openat,
  openInRoot,
  S_IF,
  SyscallError,
  statAt,
  symlinkat,
  unlinkat,
  utimensat,
  writeAll,
} from '@sd/sys';
import { ArchiveError, UnsafeEntryError } from '../errors.js';
import type { TarEntry } from '../tar/header.js';
import type { TarSink } from '../tar/reader.js';
import type { DirectSink } from './direct.js';
import { EntryMeta } from './meta.js';
import { entryPath } from './paths.js';

/**
 * Writes tar entries into a directory that only this extraction uses (a
 * hidden temporary image), safely: parents are looked up by the kernel with
 * RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS, so neither `..`, an absolute path
 * nor a symlink planted by an earlier entry can send a write anywhere else;
 * the last component is created by name with O_EXCL/O_NOFOLLOW; symlinks
 * are made as links and never followed; hard links only to entries already
 * in the tree; device nodes only when allowed. Owners, modes, xattrs and
 * mtimes are applied on the open file (meta.ts); directories get theirs at
 * the end (made with their final mode where that is safe meanwhile:
 * EntryMeta.dirMode). A plain tar in a regular file moves big files' data inside the
 * kernel (direct.ts).
 */

export type DevicePolicy = 'allow' | 'skip' | 'refuse';

export interface ExtractOptions {
  /** Device nodes: create them ('allow'), leave them out with a log line ('skip', default), or fail. */
  devices?: DevicePolicy;
  /** Added to every uid and gid (a user-namespaced pool). */
  uidShift?: number;
  /** Notes about entries left out. */
  log?: (message: string) => void;
}

interface DirMeta {
  /** Relative to the root, '' for the root itself (entryPath()). */
  rel: string;
  e: TarEntry;
  /** The mode this extraction made it with; undefined: it was there already (owner, mode unknown). */
  made: number | undefined;
}

const { EEXIST } = ERRNO;
const { ENOENT } = ERRNO;
const { ELOOP } = ERRNO;
const { ENOTDIR } = ERRNO;
const { EXDEV } = ERRNO;
const IN_ROOT = { noSymlinks: true, noXdev: true } as const;
/** Parent directory fds kept open at once. */
const DIR_CACHE = 16;

export interface ExtractStats {
  entries: number;
  bytes: number;
  skipped: number;
}

export class Extractor implements TarSink, DirectSink {
  readonly #root: number;
  readonly #devices: DevicePolicy;
  readonly #log: (m: string) => void;
  readonly #meta: EntryMeta;
  /**
   * O_PATH fds of recently used parent directories, least recently used
   * first: GNU tar goes back to a directory after each subdirectory, and a
   * lookup per return cost an openat2 and a close. Safe to keep: entries
   * never replace or move a directory (a non-directory by a directory's
   * name is refused, hard links to directories too).
   */
  readonly #dirFds = new Map<string, number>();
  #lastKey: string | undefined;
  #file: { fd: number; e: TarEntry; name: string } | undefined;
  readonly #dirs: DirMeta[] = [];
  /** The same records by path: a directory the archive lists again takes the later entry's metadata, as GNU tar does. */
  readonly #dirByPath = new Map<string, DirMeta>();
  readonly stats: ExtractStats = { entries: 0, bytes: 0, skipped: 0 };

  /** `rootFd`: an O_PATH fd of the (empty) target directory; it stays the caller's to close. */
  constructor(rootFd: number, options: ExtractOptions = {}) {
    this.#root = rootFd;
    this.#devices = options.devices ?? 'skip';
    this.#log = options.log ?? (() => {});
    this.#meta = new EntryMeta(rootFd, options.uidShift ?? 0);
  }

  /** An fd of the directory `key` (relative, '' the root), created (like tar does) when the archive left it out (`create`). */
  #parent(key: string, path: string, create = true): number {
    const cached = this.#dirFds.get(key);
    if (cached !== undefined) {
      if (this.#lastKey !== key) {
        // Most recently used last.
        this.#dirFds.delete(key);
        this.#dirFds.set(key, cached);
        this.#lastKey = key;
      }
      return cached;
    }
    const rel = key === '' ? '.' : key;
    let fd: number;
    try {
      fd = openInRoot(this.#root, rel, O.PATH | O.DIRECTORY, undefined, IN_ROOT);
    } catch (e) {
      if (!(e instanceof SyscallError) || e.errno !== ENOENT || !create) throw this.#lookupError(e, path);
      try {
        mkdirInRoot(this.#root, rel, 0o755, { ...IN_ROOT, parents: true });
        fd = openInRoot(this.#root, rel, O.PATH | O.DIRECTORY, undefined, IN_ROOT);
      } catch (e2) {
        throw this.#lookupError(e2, path);
      }
    }
    if (this.#dirFds.size >= DIR_CACHE) {
      const [oldKey, oldFd] = this.#dirFds.entries().next().value as [string, number];
      this.#dirFds.delete(oldKey);
      closeQuietly(oldFd);
    }
    this.#dirFds.set(key, fd);
    this.#lastKey = key;
    return fd;
  }

  #lookupError(e: unknown, path: string): unknown {
    if (e instanceof SyscallError && (e.errno === ELOOP || e.errno === EXDEV))
      return new UnsafeEntryError(path, 'its parent directory is reached through a symlink', { cause: e });
    if (e instanceof SyscallError && (e.errno === ENOTDIR || e.errno === EEXIST))
      return new ArchiveError(`Archive entry ${JSON.stringify(path)}: a parent is not a directory`, {
        cause: e,
      });
    return e;
  }

  /** Makes room for a new non-directory entry: an older non-directory by that name is replaced. */
  #clear(dirFd: number, name: string, path: string): void {
    let st: ReturnType<typeof statAt>;
    try {
      st = statAt(dirFd, name, AT.SYMLINK_NOFOLLOW);
    } catch {
      return;
    }
    if ((st.mode & S_IF.MT) === S_IF.DIR)
      throw new ArchiveError(`Archive entry ${JSON.stringify(path)} would replace a directory`);
    unlinkat(dirFd, name);
  }

  /** Creates a non-directory entry; an older one by that name is replaced (looked at only on EEXIST: the common case costs no stat). */
  #create(dirFd: number, name: string, path: string, make: () => void): void {
    try {
      make();
    } catch (err) {
      if (!(err instanceof SyscallError && err.errno === EEXIST)) throw err;
      this.#clear(dirFd, name, path);
      make();
    }
  }

  entry(e: TarEntry): void {
    if (this.#file) throw new ArchiveError('Internal: a file entry was not finished');
    this.stats.entries++;
    const rel = entryPath(e.path);
    if (rel === '') {
      if (e.type !== 'directory') throw new UnsafeEntryError(e.path, 'only a directory can be the root');
      this.#addDir(rel, e, undefined);
      return;
    }
    const slash = rel.lastIndexOf('/');
    const name = slash < 0 ? rel : rel.slice(slash + 1);
    const dirFd = this.#parent(slash < 0 ? '' : rel.slice(0, slash), e.path);
    switch (e.type) {
      case 'directory': {
        let made: number | undefined = this.#meta.dirMode(e.mode);
        try {
          mkdirat(dirFd, name, made);
        } catch (err) {
          if (!(err instanceof SyscallError && err.errno === EEXIST)) throw err;
          const st = statAt(dirFd, name, AT.SYMLINK_NOFOLLOW);
          if ((st.mode & S_IF.MT) !== S_IF.DIR) {
            this.#clear(dirFd, name, e.path);
            mkdirat(dirFd, name, made);
          } else made = undefined; // made before (a parent of an earlier entry, or twice in the archive)
        }
        this.#addDir(rel, e, made);
        return;
      }
      case 'file': {
        const flags = O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW;
        const mode = this.#meta.createMode(e.mode);
        let fd: number;
        try {
          fd = openat(dirFd, name, flags, mode);
        } catch (err) {
          if (!(err instanceof SyscallError && err.errno === EEXIST)) throw err;
          this.#clear(dirFd, name, e.path);
          fd = openat(dirFd, name, flags, mode);
        }
        this.#file = { fd, e, name };
        return;
      }
      case 'symlink': {
        if (e.linkname === '')
          throw new ArchiveError(`Symlink ${JSON.stringify(e.path)} has an empty target`);
        this.#create(dirFd, name, e.path, () => symlinkat(e.linkname, dirFd, name));
        const uid = this.#meta.id(e.uid, 'uid', e.path);
        const gid = this.#meta.id(e.gid, 'gid', e.path);
        if (this.#meta.needsChown(uid, gid)) fchownat(dirFd, name, uid, gid, AT.SYMLINK_NOFOLLOW);
        utimensat(dirFd, name, e.mtime, e.mtime, AT.SYMLINK_NOFOLLOW);
        return;
      }
      case 'hardlink':
        this.#hardlink(e, rel, dirFd, name);
        return;
      case 'char':
      case 'block':
      case 'fifo': {
        if (e.type !== 'fifo' && this.#devices !== 'allow') {
          if (this.#devices === 'refuse') throw new UnsafeEntryError(e.path, 'device nodes are not allowed');
          this.stats.skipped++;
          this.#log(`Skipping device node ${e.path}`);
          return;
        }
        const type = e.type === 'char' ? S_IF.CHR : e.type === 'block' ? S_IF.BLK : S_IF.FIFO;
        const dev = e.type === 'fifo' ? 0 : makedev(e.devmajor, e.devminor);
        this.#create(dirFd, name, e.path, () => mknodat(dirFd, name, type | 0o600, dev));
        fchownat(
          dirFd,
          name,
          this.#meta.id(e.uid, 'uid', e.path),
          this.#meta.id(e.gid, 'gid', e.path),
          AT.SYMLINK_NOFOLLOW,
        );
        fchmodat(dirFd, name, e.mode & 0o7777);
        utimensat(dirFd, name, e.mtime, e.mtime, AT.SYMLINK_NOFOLLOW);
        return;
      }
    }
  }

  /**
   * Records a directory's metadata for finish(). Listed again, the later
   * entry's replaces the earlier one's, keeping how the directory was made
   * and its place (before its children, so after them in finish()).
   */
  #addDir(rel: string, e: TarEntry, made: number | undefined): void {
    const earlier = this.#dirByPath.get(rel);
    if (earlier) {
      earlier.e = e;
      return;
    }
    const d: DirMeta = { rel, e, made };
    this.#dirs.push(d);
    this.#dirByPath.set(rel, d);
  }

  #hardlink(e: TarEntry, rel: string, dirFd: number, name: string): void {
    const target = entryPath(e.linkname);
    if (target === '') throw new UnsafeEntryError(e.path, 'a hard link to the root');
    if (target === rel) throw new ArchiveError(`Hard link ${JSON.stringify(e.path)} points at itself`);
    let src: number;
    try {
      src = openInRoot(this.#root, target, O.PATH | O.NOFOLLOW, undefined, IN_ROOT);
    } catch (err) {
      if (err instanceof SyscallError && err.errno === ENOENT)
        throw new UnsafeEntryError(
          e.path,
          `its hard link target ${JSON.stringify(e.linkname)} is not in the tree`,
        );
      throw this.#lookupError(err, e.path);
    }
    try {
      const st = statAt(src, '', AT.EMPTY_PATH);
      if ((st.mode & S_IF.MT) === S_IF.DIR) throw new UnsafeEntryError(e.path, 'a hard link to a directory');
      this.#create(dirFd, name, e.path, () => linkat(src, '', dirFd, name, AT.EMPTY_PATH));
    } finally {
      closeQuietly(src);
    }
  }

  data(chunk: Buffer): void {
    const f = this.#file;
    if (!f) return;
    // write(2) through koffi: fs.writeSync's argument checks cost more than the call on small files.
    try {
      writeAll(f.fd, chunk);
    } catch (e) {
      if (e instanceof SyscallError) throw new SyscallError('write', e.errno, f.e.path, { cause: e });
      throw e;
    }
    this.stats.bytes += chunk.length;
  }

  /** The file whose data comes next, for a caller that moves the data itself (directData). */
  get dataFd(): number | undefined {
    return this.#file?.fd;
  }

  /** Counts data a caller moved into dataFd by itself. */
  directData(bytes: number): void {
    this.stats.bytes += bytes;
  }

  end(): void {
    const f = this.#file;
    if (!f) return;
    this.#file = undefined;
    try {
      this.#meta.apply(f.fd, f.e, true);
    } finally {
      closeQuietly(f.fd);
    }
  }

  /**
   * After the last entry: directory owners, modes, xattrs and mtimes,
   * deepest first. A directory made here that needs only its mtime gets it
   * by name at its parent (AT_SYMLINK_NOFOLLOW; the parent fd comes from
   * the kernel's in-root lookup, and entries never replace a directory),
   * one call instead of open, fchown, fchmod, futimens and close.
   */
  finish(): void {
    if (this.#file) closeQuietly(this.#file.fd);
    this.#file = undefined;
    for (let i = this.#dirs.length - 1; i >= 0; i--) {
      const { rel, e, made } = this.#dirs[i]!;
      if (made !== undefined && !this.#meta.dirNeedsMeta(e, made)) {
        const slash = rel.lastIndexOf('/');
        const dirFd = this.#parent(slash < 0 ? '' : rel.slice(0, slash), e.path, false);
        utimensat(dirFd, slash < 0 ? rel : rel.slice(slash + 1), e.mtime, e.mtime, AT.SYMLINK_NOFOLLOW);
        continue;
      }
      const fd = openInRoot(
        this.#root,
        rel === '' ? '.' : rel,
        O.RDONLY | O.DIRECTORY | O.NOFOLLOW,
        undefined,
        IN_ROOT,
      );
      try {
        this.#meta.apply(fd, e);
      } finally {
        closeQuietly(fd);
      }
    }
    this.close();
  }

  /** Closes what is open (also after a failure). */
  close(): void {
    if (this.#file) closeQuietly(this.#file.fd);
    this.#file = undefined;
    for (const fd of this.#dirFds.values()) closeQuietly(fd);
    this.#dirFds.clear();
    this.#lastKey = undefined;
  }
}

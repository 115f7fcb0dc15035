import { readFileSync } from 'node:fs';
import {
  AT,
  closeQuietly,
  ERRNO,
  fchmod,
  fchmodat,
  fchown,
  fchownat,
  fgetxattr,
  fsetxattr,
  futimens,
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
  type Timespec,
  unlinkat,
  utimensat,
  writeAll,
} from '@sd/sys';
import { ArchiveError, UnsafeEntryError } from '../errors.js';
import { ACL_XATTR, shiftAclXattr } from '../tar/acl.js';
import type { TarEntry } from '../tar/header.js';
import type { TarSink } from '../tar/reader.js';
import { entryComponents } from './paths.js';

/**
 * Writes tar entries into a directory that only this extraction uses (a
 * hidden temporary image), safely: parents are looked up by the kernel with
 * RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS, so neither `..`, an absolute path
 * nor a symlink planted by an earlier entry can send a write anywhere else;
 * the last component is created by name with O_EXCL/O_NOFOLLOW; symlinks
 * are made as links and never followed; hard links only to entries already
 * in the tree; device nodes only when allowed. Owners, modes, xattrs and
 * mtimes are applied on the open file (chown first: it clears setuid and
 * security.capability); directories get theirs at the end.
 *
 * Speed: a file is created with its final permission bits, and the chown
 * and chmod are left out when the kernel already gave the file the owner
 * and mode the archive asks for (our fsuid/fsgid, no setgid root, no default
 * ACL, no umask bits in the way): on a distribution tree almost every file
 * is root:root 0644/0755, so a file costs openat + write + futimens + close.
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
  parts: string[];
  e: TarEntry;
}

const { EEXIST } = ERRNO;
const { ENOENT } = ERRNO;
const { ELOOP } = ERRNO;
const { ENOTDIR } = ERRNO;
const { EXDEV } = ERRNO;
const IN_ROOT = { noSymlinks: true, noXdev: true } as const;
/** Parent directory fds kept open at once. */
const DIR_CACHE = 16;

const ts = (t: TarEntry['mtime']): Timespec => ({ sec: t.sec, nsec: t.nsec });

export interface ExtractStats {
  entries: number;
  bytes: number;
  skipped: number;
}

export class Extractor implements TarSink {
  readonly #root: number;
  readonly #devices: DevicePolicy;
  readonly #shift: number;
  readonly #log: (m: string) => void;
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
  /** The owner every new entry gets by itself, or undefined when it is not certain (a setgid root). */
  readonly #ownIds: { uid: number; gid: number } | undefined;
  /** New files get exactly `mode & ~umask` (no default ACL on the root), so the chmod may be left out. */
  readonly #umask: number | undefined;
  readonly stats: ExtractStats = { entries: 0, bytes: 0, skipped: 0 };

  /** `rootFd`: an O_PATH fd of the (empty) target directory; it stays the caller's to close. */
  constructor(rootFd: number, options: ExtractOptions = {}) {
    this.#root = rootFd;
    this.#devices = options.devices ?? 'skip';
    this.#shift = options.uidShift ?? 0;
    this.#log = options.log ?? (() => {});
    const st = statAt(rootFd, '', AT.EMPTY_PATH);
    const uid = process.geteuid?.();
    const gid = process.getegid?.();
    // Directories made below inherit a setgid bit (and with it the group); the archive's own modes come at the end.
    this.#ownIds =
      (st.mode & 0o2000) === 0 && uid !== undefined && gid !== undefined ? { uid, gid } : undefined;
    this.#umask = hasDefaultAcl(rootFd) ? undefined : currentUmask();
  }

  /** Whether a new entry owned by us by default needs the archive's owner set. */
  #needsChown(uid: number, gid: number): boolean {
    return this.#ownIds === undefined || uid !== this.#ownIds.uid || gid !== this.#ownIds.gid;
  }

  /** The permission bits a new file is created with: the final ones where the kernel keeps them intact. */
  #createMode(mode: number): number {
    return this.#umask === undefined ? 0o600 : mode & 0o777;
  }

  /** Whether the file made with #createMode(mode) still needs a chmod: setuid/setgid/sticky, bits the umask removed. */
  #needsChmod(mode: number): boolean {
    return this.#umask === undefined || (mode & 0o7000) !== 0 || (mode & this.#umask) !== 0;
  }

  #id(v: number, what: string, path: string): number {
    const id = v + this.#shift;
    if (id > 0xfffffffe)
      throw new UnsafeEntryError(path, `${what} ${v} shifted by ${this.#shift} is out of range`);
    return id;
  }

  /** An fd of the parent directory of `parts`, created (like tar does) when the archive left it out. */
  #parent(parts: string[], path: string): number {
    const key = parts.length === 1 ? '' : parts.slice(0, -1).join('/');
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
      if (!(e instanceof SyscallError) || e.errno !== ENOENT) throw this.#lookupError(e, path);
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
    const parts = entryComponents(e.path);
    if (parts.length === 0) {
      if (e.type !== 'directory') throw new UnsafeEntryError(e.path, 'only a directory can be the root');
      this.#dirs.push({ parts, e });
      return;
    }
    const name = parts[parts.length - 1]!;
    const dirFd = this.#parent(parts, e.path);
    switch (e.type) {
      case 'directory': {
        try {
          mkdirat(dirFd, name, 0o700);
        } catch (err) {
          if (!(err instanceof SyscallError && err.errno === EEXIST)) throw err;
          const st = statAt(dirFd, name, AT.SYMLINK_NOFOLLOW);
          if ((st.mode & S_IF.MT) !== S_IF.DIR) {
            this.#clear(dirFd, name, e.path);
            mkdirat(dirFd, name, 0o700);
          }
        }
        this.#dirs.push({ parts, e });
        return;
      }
      case 'file': {
        const flags = O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW;
        const mode = this.#createMode(e.mode);
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
        const uid = this.#id(e.uid, 'uid', e.path);
        const gid = this.#id(e.gid, 'gid', e.path);
        if (this.#needsChown(uid, gid)) fchownat(dirFd, name, uid, gid, AT.SYMLINK_NOFOLLOW);
        utimensat(dirFd, name, ts(e.mtime), ts(e.mtime), AT.SYMLINK_NOFOLLOW);
        return;
      }
      case 'hardlink':
        this.#hardlink(e, dirFd, name);
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
          this.#id(e.uid, 'uid', e.path),
          this.#id(e.gid, 'gid', e.path),
          AT.SYMLINK_NOFOLLOW,
        );
        fchmodat(dirFd, name, e.mode & 0o7777);
        utimensat(dirFd, name, ts(e.mtime), ts(e.mtime), AT.SYMLINK_NOFOLLOW);
        return;
      }
    }
  }

  #hardlink(e: TarEntry, dirFd: number, name: string): void {
    const target = entryComponents(e.linkname);
    if (target.length === 0) throw new UnsafeEntryError(e.path, 'a hard link to the root');
    if (target.join('/') === entryComponents(e.path).join('/'))
      throw new ArchiveError(`Hard link ${JSON.stringify(e.path)} points at itself`);
    let src: number;
    try {
      src = openInRoot(this.#root, target.join('/'), O.PATH | O.NOFOLLOW, undefined, IN_ROOT);
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
      this.#applyMeta(f.fd, f.e, true);
    } finally {
      closeQuietly(f.fd);
    }
  }

  /** `created`: a file this extraction made with #createMode(), whose owner and mode may already be right. */
  #applyMeta(fd: number, e: TarEntry, created = false): void {
    const uid = this.#id(e.uid, 'uid', e.path);
    const gid = this.#id(e.gid, 'gid', e.path);
    const chown = !created || this.#needsChown(uid, gid);
    if (chown) fchown(fd, uid, gid, e.path);
    // A chown clears setuid/setgid, and #needsChmod is true for those anyway.
    if (!created || this.#needsChmod(e.mode)) fchmod(fd, e.mode & 0o7777, e.path);
    for (const [k, raw] of e.xattrs) {
      const v =
        this.#shift !== 0 && (k === ACL_XATTR.access || k === ACL_XATTR.default)
          ? shiftAclXattr(raw, this.#shift, JSON.stringify(e.path))
          : raw;
      try {
        fsetxattr(fd, k, v, 0, e.path);
      } catch (err) {
        throw new ArchiveError(`Cannot set xattr ${k} on ${JSON.stringify(e.path)}`, { cause: err });
      }
    }
    futimens(fd, ts(e.mtime), ts(e.mtime), e.path);
  }

  /** After the last entry: directory owners, modes, xattrs and mtimes, deepest first. */
  finish(): void {
    this.close();
    for (let i = this.#dirs.length - 1; i >= 0; i--) {
      const { parts, e } = this.#dirs[i]!;
      const fd = openInRoot(
        this.#root,
        parts.length ? parts.join('/') : '.',
        O.RDONLY | O.DIRECTORY | O.NOFOLLOW,
        undefined,
        IN_ROOT,
      );
      try {
        this.#applyMeta(fd, e);
      } finally {
        closeQuietly(fd);
      }
    }
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

/** The process umask, from /proc (process.umask() without an argument is deprecated: it races). */
function currentUmask(): number {
  const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number.parseInt(m[1]!, 8) : 0o777;
}

/** A default ACL on the root decides new files' modes instead of the umask. */
function hasDefaultAcl(rootFd: number): boolean {
  const fd = openat(rootFd, '.', O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
  try {
    return fgetxattr(fd, 'system.posix_acl_default') !== undefined;
  } catch (e) {
    // No ACL support on the file system: no default ACL either. Anything else: assume one (always chmod).
    return !(e instanceof SyscallError && e.errno === ERRNO.EOPNOTSUPP);
  } finally {
    closeQuietly(fd);
  }
}

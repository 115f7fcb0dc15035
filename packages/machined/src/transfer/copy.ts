import {
  AT,
  closeQuietly,
  DataCopier,
  fchmod,
  fchown,
  fchownat,
  futimens,
  mkdirat,
  mknodat,
  O,
  openat,
  openInRoot,
  readDirFd,
  readlinkat,
  S_IF,
  SdError,
  SyscallError,
  statxFull,
  symlinkat,
  unlinkat,
  withFsIds,
} from '@sd/sys';

/**
 * CopyToMachine / CopyFromMachine. Every path inside the machine is
 * resolved by the kernel inside its root (openat2 RESOLVE_IN_ROOT on an fd
 * of /proc/PID/root): a symlink planted there leads somewhere else inside,
 * never to the host. Below the top, trees are walked by directory fds with
 * O_NOFOLLOW and links are copied as links. Existing directories are
 * merged into (systemd's COPY_MERGE); an existing file or link is an error
 * unless `replace`, which removes it first — a link is never written
 * through. Modes and times are kept; owners are shifted by the machine's
 * UID shift (in: +shift, out: −shift).
 */

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
}

/** An existing directory, and a name in it to create. */
interface Place {
  dirFd: number;
  name: string;
  /** For messages. */
  path: string;
}

const EEXIST = 17;
const ENOENT = 2;

function splitPath(path: string): { parent: string; name: string } {
  const trimmed = path.replace(/\/+$/, '');
  const slash = trimmed.lastIndexOf('/');
  const name = trimmed.slice(slash + 1);
  if (name === '' || name === '.' || name === '..')
    throw new SdError('EINVAL', `Path '${path}' does not name a file`);
  return { parent: slash <= 0 ? '/' : trimmed.slice(0, slash), name };
}

function removeAt(dirFd: number, name: string, path: string): void {
  const st = statxFull(dirFd, name, AT.SYMLINK_NOFOLLOW);
  if ((st.mode & S_IF.MT) !== S_IF.DIR) {
    unlinkat(dirFd, name);
    return;
  }
  const fd = openat(dirFd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
  try {
    for (const e of readDirFd(fd, path)) removeAt(fd, e.name, `${path}/${e.name}`);
  } finally {
    closeQuietly(fd);
  }
  unlinkat(dirFd, name, AT.REMOVEDIR);
}

class Copier {
  readonly data = new DataCopier('auto');
  constructor(readonly opts: CopyOptions) {}

  /** Creates a directory entry as `creator`. */
  create<T>(fn: () => T): T {
    const c = this.opts.creator;
    return c && (c.uid !== 0 || c.gid !== 0) ? withFsIds(c.uid, c.gid, fn) : fn();
  }

  /** Copies the object `src` (an O_PATH fd of it, not followed) to `dst`. */
  copy(src: number, srcPath: string, dst: Place): void {
    const st = statxFull(src, '', AT.EMPTY_PATH);
    const type = st.mode & S_IF.MT;
    const exists = (() => {
      try {
        return statxFull(dst.dirFd, dst.name, AT.SYMLINK_NOFOLLOW);
      } catch (e) {
        if (e instanceof SyscallError && e.errno === ENOENT) return undefined;
        throw e;
      }
    })();
    if (exists) {
      const bothDirs = type === S_IF.DIR && (exists.mode & S_IF.MT) === S_IF.DIR;
      if (!bothDirs) {
        if (!this.opts.replace) throw new SyscallError('copy', EEXIST, dst.path);
        removeAt(dst.dirFd, dst.name, dst.path);
      }
    }
    const uid = this.opts.mapId(st.uid);
    const gid = this.opts.mapId(st.gid);
    const perm = st.mode & 0o7777;
    if (type === S_IF.DIR) {
      if (!exists || (exists.mode & S_IF.MT) !== S_IF.DIR)
        this.create(() => mkdirat(dst.dirFd, dst.name, 0o700));
      const out = openat(dst.dirFd, dst.name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
      const dir = openat(src, '.', O.RDONLY | O.DIRECTORY);
      try {
        for (const e of readDirFd(dir, srcPath)) {
          const child = openat(dir, e.name, O.PATH | O.NOFOLLOW);
          try {
            this.copy(child, `${srcPath}/${e.name}`, {
              dirFd: out,
              name: e.name,
              path: `${dst.path}/${e.name}`,
            });
          } finally {
            closeQuietly(child);
          }
        }
        fchown(out, uid, gid, dst.path);
        fchmod(out, perm, dst.path);
        futimens(out, st.atime, st.mtime, dst.path);
      } finally {
        closeQuietly(out, dir);
      }
    } else if (type === S_IF.REG) {
      // Re-open the O_PATH fd for reading: our own fd, so the magic link is fine here.
      const input = openat(AT.FDCWD, `/proc/self/fd/${src}`, O.RDONLY | O.NOCTTY | O.NONBLOCK);
      let out: number | undefined;
      try {
        out = this.create(() => openat(dst.dirFd, dst.name, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, 0o600));
        this.data.copySync(input, out, dst.path);
        fchown(out, uid, gid, dst.path);
        fchmod(out, perm, dst.path);
        futimens(out, st.atime, st.mtime, dst.path);
      } finally {
        closeQuietly(input, out);
      }
    } else if (type === S_IF.LNK) {
      const target = readlinkat(src, '');
      this.create(() => symlinkat(target, dst.dirFd, dst.name));
      fchownat(dst.dirFd, dst.name, uid, gid, AT.SYMLINK_NOFOLLOW);
    } else if (type === S_IF.FIFO) {
      this.create(() => mknodat(dst.dirFd, dst.name, S_IF.FIFO | perm));
      fchownat(dst.dirFd, dst.name, uid, gid, AT.SYMLINK_NOFOLLOW);
    } else {
      // Device nodes and sockets are not copied between host and machine.
      throw new SdError('EOPNOTSUPP', `Refusing to copy '${srcPath}': not a file, directory, link or fifo`);
    }
  }
}

/** Copies host `source` to `dest` inside the machine whose root is `rootFd`. */
export function copyToMachine(rootFd: number, source: string, dest: string, opts: CopyOptions): void {
  if (!source.startsWith('/') || !dest.startsWith('/'))
    throw new SdError('EINVAL', 'Source and destination paths must be absolute');
  const src = openat(AT.FDCWD, source, O.PATH);
  const { parent, name } = splitPath(dest);
  let dirFd: number | undefined;
  try {
    dirFd = openInRoot(rootFd, parent, O.RDONLY | O.DIRECTORY);
    new Copier(opts).copy(src, source, { dirFd, name, path: dest });
  } finally {
    closeQuietly(src, dirFd);
  }
}

/** Copies `source` inside the machine to host `dest`. */
export function copyFromMachine(rootFd: number, source: string, dest: string, opts: CopyOptions): void {
  if (!source.startsWith('/') || !dest.startsWith('/'))
    throw new SdError('EINVAL', 'Source and destination paths must be absolute');
  const src = openInRoot(rootFd, source, O.PATH);
  const { parent, name } = splitPath(dest);
  let dirFd: number | undefined;
  try {
    dirFd = openat(AT.FDCWD, parent, O.RDONLY | O.DIRECTORY);
    new Copier(opts).copy(src, source, { dirFd, name, path: dest });
  } finally {
    closeQuietly(src, dirFd);
  }
}

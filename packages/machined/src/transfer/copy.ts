import {
  AT,
  acquireCopyHelper,
  type CopyHelper,
  closeQuietly,
  O,
  openat,
  openInRoot,
  readlinkat,
  releaseCopyHelper,
  S_IF,
  SdError,
  statxFull,
} from '@sd/sys';
import { Copier, type CopyOptions, on, type Place, splitPath } from './copier.js';
import { COPY_JOBS_MODULE } from './copy-jobs.js';

/**
 * CopyToMachine / CopyFromMachine, run in a worker process (worker/) so
 * that the daemon's loop never waits for them. Every path inside the
 * machine is resolved by the kernel inside its root (openat2
 * RESOLVE_IN_ROOT on an fd of /proc/PID/root): a symlink planted there
 * leads somewhere else inside, never to the host. A source that is itself
 * a symbolic link is copied as the link, as systemd's copies do. Below the top, trees are
 * walked by directory fds with O_NOFOLLOW, links are copied as links, and
 * the walk stays on the source's file system (the machine's /proc, /sys or
 * a bind mount are not entered: their mount points are copied empty).
 *
 * Each new entry is written under a hidden temporary name next to its
 * destination and renamed into place when complete, so a failed or
 * cancelled copy leaves nothing half-written behind: the temporary tree is
 * removed. Existing directories are merged into (systemd's COPY_MERGE),
 * entry by entry; an existing file or link is an error unless `replace`,
 * which replaces it — a link is never written through. Modes and times are
 * kept; owners are shifted by the machine's UID map.
 */

export { CopyCancelledError, type CopyOptions, removeAt } from './copier.js';
export { type IdMapSpec, idMapper } from './ids.js';

/** What can be checked before a copy starts: absolute paths, a destination that names a file. */
export function checkPaths(source: string, dest: string): void {
  if (!source.startsWith('/') || !dest.startsWith('/'))
    throw new SdError('EINVAL', 'Source and destination paths must be absolute');
  if (source.includes('\0') || dest.includes('\0')) throw new SdError('EINVAL', 'Paths must not contain NUL');
  splitPath(dest);
}

/**
 * The top of the source, looked at with O_PATH|O_NOFOLLOW: a symbolic link
 * named as the source is copied as the link itself (systemd's copies do
 * the same), never followed — on the host, or out of or inside the
 * machine's root; the components before it are resolved as always (in
 * the machine's root there). A directory or regular file is then opened
 * for reading, so that a device node is never opened.
 */
function openSource(openPath: (path: string, flags: number) => number, path: string): Place {
  const p = on(path, () => openPath(path, O.PATH | O.NOFOLLOW));
  const top = path.replace(/\/+$/, '') || '/';
  let fd: number | undefined;
  try {
    const st = on(path, () => statxFull(p, '', AT.EMPTY_PATH));
    const type = st.mode & S_IF.MT;
    if (type === S_IF.LNK)
      return { dirFd: p, fd: p, name: '', path: top, link: on(path, () => readlinkat(p, '')) };
    if (type === S_IF.DIR) fd = on(path, () => openat(p, '.', O.RDONLY | O.DIRECTORY));
    else if (type === S_IF.REG) {
      fd = on(path, () => openPath(path, O.RDONLY | O.NONBLOCK | O.NOCTTY | O.NOFOLLOW));
      const again = on(path, () => statxFull(fd!, '', AT.EMPTY_PATH));
      if (again.ino !== st.ino || again.devMajor !== st.devMajor || again.devMinor !== st.devMinor)
        throw new SdError('EAGAIN', `Refusing to copy '${path}': it changed while being opened`);
    } else if (type === S_IF.FIFO) fd = p;
    else throw new SdError('EOPNOTSUPP', `Refusing to copy '${path}': not a file, directory, link or fifo`);
  } catch (e) {
    closeQuietly(p, fd);
    throw e;
  }
  if (fd !== p) closeQuietly(p);
  return { dirFd: fd, fd, name: '.', path: top };
}

/**
 * A machine copy's options; with `helper`, a directory is copied by two
 * processes (copier.ts): the helper is asked for only once the source
 * shows to be a directory, and given back (or stopped after a failure).
 */
export interface MachineCopyOptions extends CopyOptions {
  helper?: { acquire(): Promise<CopyHelper>; release(h: CopyHelper): void };
}

async function run(
  source: string,
  dest: string,
  opts: MachineCopyOptions,
  openSrc: (path: string, flags: number) => number,
  openDst: (dir: string) => number,
): Promise<void> {
  checkPaths(source, dest);
  const { parent, name } = splitPath(dest);
  const src = openSource(openSrc, source);
  let dirFd: number | undefined;
  let helper: CopyHelper | undefined;
  try {
    dirFd = on(parent, () => openDst(parent));
    const isDir =
      src.link === undefined && (statxFull(src.fd!, '', AT.EMPTY_PATH).mode & S_IF.MT) === S_IF.DIR;
    // A helper that cannot be started leaves the copy to this process.
    if (opts.helper && opts.idMap && isDir) helper = await opts.helper.acquire().catch(() => undefined);
    new Copier({ ...opts, parallel: helper }).copyTop(src, { dirFd, name, path: dest.replace(/\/+$/, '') });
  } finally {
    closeQuietly(src.fd, dirFd);
    if (helper) opts.helper?.release(helper);
  }
}

/** The shared warm copy helper with this package's jobs (@sd/sys acquireCopyHelper). */
export const machineCopyHelper = {
  acquire: () => acquireCopyHelper([COPY_JOBS_MODULE]),
  release: (h: CopyHelper) => releaseCopyHelper(h, [COPY_JOBS_MODULE]),
};

const DIR = O.RDONLY | O.DIRECTORY;

/** Copies host `source` to `dest` inside the machine whose root is `rootFd`. */
export function copyToMachine(
  rootFd: number,
  source: string,
  dest: string,
  opts: MachineCopyOptions,
): Promise<void> {
  return run(
    source,
    dest,
    opts,
    (path, flags) => openat(AT.FDCWD, path, flags),
    (dir) => openInRoot(rootFd, dir, DIR),
  );
}

/** Copies `source` inside the machine to host `dest`. */
export function copyFromMachine(
  rootFd: number,
  source: string,
  dest: string,
  opts: MachineCopyOptions,
): Promise<void> {
  return run(
    source,
    dest,
    opts,
    (path, flags) => openInRoot(rootFd, path, flags),
    (dir) => openat(AT.FDCWD, dir, DIR),
  );
}

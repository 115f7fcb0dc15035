import { AT, O, S_IF } from '../constants.js';
import { SdError, SyscallError } from '../errors.js';
import { closeQuietly, open, read, writeAll } from '../fd/fd.js';
import { check, lazyFunc } from '../ffi/libc.js';
import { statAt } from './at.js';
import { type InRootOptions, openInRoot } from './resolve.js';

/**
 * The one rule for reading or writing a file inside a tree someone else
 * controls (a container's root, a mounted image): resolve it inside the
 * root, refuse anything but a regular file before opening it for I/O, never
 * block on open, and cap what is read. A device node planted at
 * /etc/resolv.conf must never become a host loop device written by root; a
 * FIFO must never hang the caller.
 */

const c = {
  ftruncate: lazyFunc('ftruncate', 'int', ['int', 'int64_t']),
};

const ENOENT = 2;
const EEXIST = 17;

/** A path in a tree that is not a regular file where one is required. */
export class NotRegularFileError extends SdError {
  constructor(
    readonly path: string,
    readonly fileType: string,
  ) {
    super('EBADFD', `'${path}' is ${fileType}, not a regular file: refusing to open it`);
  }
}

export function fileTypeName(mode: number): string {
  switch (mode & S_IF.MT) {
    case S_IF.REG:
      return 'a regular file';
    case S_IF.DIR:
      return 'a directory';
    case S_IF.LNK:
      return 'a symlink';
    case S_IF.BLK:
      return 'a block device';
    case S_IF.CHR:
      return 'a character device';
    case S_IF.FIFO:
      return 'a FIFO';
    case S_IF.SOCK:
      return 'a socket';
    default:
      return 'of an unknown type';
  }
}

export interface RegularInRootOptions extends InRootOptions {
  /** Refuse a symlink as the last component (it is still never followed out of the root). */
  noFollow?: boolean;
}

/** An O_PATH fd of `path` in the root, checked to be a regular file; nothing is opened for I/O yet. */
function pathFdOfRegular(rootFd: number, path: string, o: RegularInRootOptions): number {
  const pfd = openInRoot(rootFd, path, O.PATH | (o.noFollow ? O.NOFOLLOW : 0), undefined, o);
  if (pfd < 0) return pfd; // missingOk and missing
  try {
    const st = statAt(pfd, '', AT.EMPTY_PATH);
    if ((st.mode & S_IF.MT) !== S_IF.REG) throw new NotRegularFileError(path, fileTypeName(st.mode));
    return pfd;
  } catch (e) {
    closeQuietly(pfd);
    throw e;
  }
}

/**
 * Opens the regular file at `path` inside the root for reading or writing
 * (`flags`: O.RDONLY, O.WRONLY or O.RDWR, with O.TRUNC/O.APPEND as wanted).
 * The file is first resolved with O_PATH (which opens nothing) and checked
 * with fstat; only a regular file is then re-opened through its own fd, so a
 * device's open() never runs and the file checked is the file opened.
 * O_NONBLOCK and O_NOCTTY are always added. Throws NotRegularFileError for
 * anything else, a SyscallError (ENOENT...) when it cannot be resolved
 * (with `missingOk`, -1 for a path that does not exist).
 */
export function openRegularInRoot(
  rootFd: number,
  path: string,
  flags: number,
  options: RegularInRootOptions = {},
): number {
  const pfd = pathFdOfRegular(rootFd, path, options);
  if (pfd < 0) return pfd;
  try {
    const access = flags & (O.WRONLY | O.RDWR | O.TRUNC | O.APPEND);
    return open(`/proc/self/fd/${pfd}`, access | O.NONBLOCK | O.NOCTTY);
  } catch (e) {
    if (e instanceof SyscallError) throw new SyscallError(e.syscall, e.errno, path, { cause: e });
    throw e;
  } finally {
    closeQuietly(pfd);
  }
}

export interface ReadRegularOptions extends RegularInRootOptions {
  /** At most this many bytes (default 1 MiB); a larger file is refused with EFBIG. */
  maxBytes?: number;
}

/**
 * Reads the regular file at `path` inside the root, capped; undefined when
 * it does not exist. Refuses device nodes, FIFOs, sockets and directories.
 */
export function readRegularInRoot(
  rootFd: number,
  path: string,
  options: ReadRegularOptions = {},
): Buffer | undefined {
  const max = options.maxBytes ?? 1 << 20;
  const fd = openRegularInRoot(rootFd, path, O.RDONLY, { ...options, missingOk: true });
  if (fd < 0) return undefined;
  try {
    // One buffer, grown when full: no copy per read and no concat for the usual small file
    // (Buffer's concat and copies compile at first use, which a container start pays).
    let buf = Buffer.alloc(Math.min(64 * 1024, max + 1));
    let total = 0;
    for (;;) {
      if (total === buf.length) {
        const bigger = Buffer.alloc(Math.min(buf.length * 2, max + 1));
        bigger.set(buf);
        buf = bigger;
      }
      const n = read(fd, buf.subarray(total));
      // -1 is EAGAIN, which a regular file never gives; stop rather than spin.
      if (n <= 0) break;
      total += n;
      if (total > max) throw new SdError('EFBIG', `'${path}' is larger than ${max} bytes`);
    }
    return buf.subarray(0, total);
  } finally {
    closeQuietly(fd);
  }
}

/**
 * Replaces the contents of `path` inside the root with `content`: an
 * existing regular file is truncated and written, a missing one is created
 * (O_EXCL, so nothing that appears meanwhile is opened); anything else is
 * refused, a symlink as the last component too (noFollow is implied).
 */
export function writeRegularInRoot(
  rootFd: number,
  path: string,
  content: Buffer | string,
  mode = 0o644,
): void {
  let fd: number;
  try {
    fd = openRegularInRoot(rootFd, path, O.WRONLY, { noFollow: true });
  } catch (e) {
    if (!(e instanceof SyscallError && e.errno === ENOENT)) throw e;
    try {
      fd = openInRoot(rootFd, path, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.NONBLOCK | O.NOCTTY, mode);
    } catch (e2) {
      if (e2 instanceof SyscallError && e2.errno === EEXIST)
        throw new SdError('EEXIST', `'${path}' appeared while it was being created; not writing it`, {
          cause: e2,
        });
      throw e2;
    }
  }
  try {
    check('ftruncate', c.ftruncate(fd, 0n), path);
    writeAll(fd, content);
  } finally {
    closeQuietly(fd);
  }
}

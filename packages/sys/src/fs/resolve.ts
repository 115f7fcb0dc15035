import { SYS } from '../arch/index.js';
import { AT, O, RESOLVE } from '../constants.js';
import { SdError, SyscallError } from '../errors.js';
import { closeQuietly } from '../fd/fd.js';
import { koffi, lazyFunc } from '../ffi/libc.js';
import { view } from '../view.js';
import { assertValidPath, mkdirat, readlinkat } from './at.js';

/**
 * Safe path resolution inside a directory tree that someone else controls
 * (a container's root, an image being unpacked): every lookup is done by the
 * kernel with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) on an fd of the
 * root, so `..`, absolute symlinks and /proc magic links cannot lead out of it.
 * Never build such paths by joining strings.
 */

const c = {
  openat2: lazyFunc('syscall', 'long', ['long', 'int', 'str', 'uint8_t *', 'size_t']),
};

const EAGAIN = 11;
const ENOENT = 2;
const EEXIST = 17;

export interface OpenHow {
  /** open(2) flags; O_CLOEXEC is always added. */
  flags: number;
  /** Permission bits for O_CREAT / O_TMPFILE; must be 0 otherwise (the kernel checks). */
  mode?: number;
  /** RESOLVE.* flags. */
  resolve?: number;
}

/**
 * openat2(2). The kernel answers EAGAIN for RESOLVE_IN_ROOT/BENEATH lookups
 * with `..` that raced a rename; those are retried a few times.
 */
export function openat2(dirfd: number, path: string, how: OpenHow, missingOk = false): number {
  assertValidPath(path);
  const b = Buffer.alloc(24);
  const v = view(b);
  v.setBigUint64(0, BigInt(how.flags | O.CLOEXEC), true);
  v.setBigUint64(8, BigInt(how.mode ?? 0), true);
  v.setBigUint64(16, BigInt(how.resolve ?? 0), true);
  for (let attempt = 0; ; attempt++) {
    const fd = Number(c.openat2(SYS.openat2, dirfd, path, b, 24));
    if (fd >= 0) return fd;
    const errno = koffi.errno();
    if (errno === EAGAIN && attempt < 16) continue;
    // A miss that is no error (a file a tree may lack) costs no exception: -1.
    if (missingOk && errno === ENOENT) return -1;
    throw new SyscallError('openat2', errno, path);
  }
}

/** An O_PATH fd of a directory to use as the root of the *InRoot() calls. Close it when done. */
export function openRoot(path: string): number {
  return openat2(AT.FDCWD, path, { flags: O.PATH | O.DIRECTORY });
}

export interface InRootOptions {
  /** Also refuse to cross a mount point (RESOLVE_NO_XDEV): for trees that must stay on one file system. */
  noXdev?: boolean;
  /** Refuse every symlink, not just magic ones (RESOLVE_NO_SYMLINKS). */
  noSymlinks?: boolean;
  /** A path that does not exist (ENOENT) gives -1 instead of an exception. */
  missingOk?: boolean;
}

function resolveFlags(o: InRootOptions): number {
  let r = RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS;
  if (o.noXdev) r |= RESOLVE.NO_XDEV;
  if (o.noSymlinks) r |= RESOLVE.NO_SYMLINKS;
  return r;
}

/**
 * Opens `path` as if `rootFd` were `/`: absolute paths and symlinks start at
 * the root, `..` stops there, magic links (/proc/self/fd/N...) are refused
 * with ELOOP. Add O.NOFOLLOW to refuse a symlink in the last component.
 */
export function openInRoot(
  rootFd: number,
  path: string,
  flags: number,
  mode?: number,
  options: InRootOptions = {},
): number {
  const creating = (flags & O.CREAT) !== 0 || (flags & O.TMPFILE) === O.TMPFILE;
  return openat2(
    rootFd,
    path,
    { flags, mode: creating ? (mode ?? 0o644) : 0, resolve: resolveFlags(options) },
    options.missingOk,
  );
}

export interface MkdirInRootOptions extends InRootOptions {
  /** Create missing parents and accept an existing directory, like `mkdir -p`. */
  parents?: boolean;
}

/** The components of a path; `.` and empty ones dropped (the root's own `..` is the kernel's business). */
function components(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

/**
 * Creates a directory at `path` inside the root. Each parent is resolved by
 * the kernel inside the root and the new entry is created by name in it, so
 * a planted symlink can redirect the walk only to somewhere else inside.
 */
export function mkdirInRoot(
  rootFd: number,
  path: string,
  mode = 0o755,
  options: MkdirInRootOptions = {},
): void {
  assertValidPath(path);
  const parts = components(path);
  if (parts.length === 0) {
    if (options.parents) return;
    throw new SyscallError('mkdirat', EEXIST, path);
  }
  const dirFlags = O.PATH | O.DIRECTORY;
  let prefix = '';
  const start = options.parents ? 0 : parts.length - 1;
  if (!options.parents) prefix = parts.slice(0, -1).join('/');
  for (let i = start; i < parts.length; i++) {
    const name = parts[i]!;
    const here = prefix === '' ? name : `${prefix}/${name}`;
    if (name !== '..') {
      const dirfd = openInRoot(rootFd, prefix === '' ? '.' : prefix, dirFlags, undefined, options);
      try {
        mkdirat(dirfd, name, mode);
      } catch (e) {
        if (!(options.parents && e instanceof SyscallError && e.errno === EEXIST)) {
          if (e instanceof SyscallError) throw new SyscallError('mkdirat', e.errno, path, { cause: e });
          throw e;
        }
        // Exists: it must be a directory (possibly through a link that stays inside).
        closeQuietly(openInRoot(rootFd, here, dirFlags, undefined, options));
      } finally {
        closeQuietly(dirfd);
      }
    } else if (!options.parents) {
      throw new SyscallError('mkdirat', EEXIST, path);
    }
    prefix = here;
  }
}

/** The path a file descriptor refers to, as the kernel tracks it. */
export function fdPath(fd: number): string {
  return readlinkat(AT.FDCWD, `/proc/self/fd/${fd}`);
}

/**
 * Resolves `path` inside the root (following links the way openInRoot does)
 * and returns where it really is, as an absolute path relative to the root.
 * The file must exist. Use it to show or log a path, not to re-open it by
 * name later (that would race): keep the fd from openInRoot() for that.
 */
export function resolveInRoot(rootFd: number, path: string, options: InRootOptions = {}): string {
  const fd = openInRoot(rootFd, path, O.PATH, undefined, options);
  try {
    const root = fdPath(rootFd);
    const real = fdPath(fd);
    if (real === root) return '/';
    if (root === '/') return real;
    if (real.startsWith(`${root}/`)) return real.slice(root.length);
    // Cannot happen with RESOLVE_IN_ROOT unless the root moved meanwhile.
    throw new SdError('EXDEV', `resolveInRoot '${path}': resolved to '${real}', outside the root '${root}'`);
  } finally {
    closeQuietly(fd);
  }
}

import {
  closeQuietly,
  isDigits,
  O,
  openInRoot,
  openRegularInRoot,
  openRoot,
  readRegularInRoot,
  SdError,
  SyscallError,
} from '@sd/sys';
import { NspawnError } from '../errors.js';

/** What to execve in the container and as whom. */

export interface UserRecord {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  groups: number[];
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** systemd-nspawn's search order for init with --boot. */
export const INIT_CANDIDATES = ['/usr/lib/systemd/systemd', '/lib/systemd/systemd', '/sbin/init'];

/**
 * A host file's bytes (resolv.conf, localtime, os-release), read as the
 * tree's files are: a FIFO or device node put there is refused, not opened
 * (a FIFO would block the start for good).
 */
export function readHostFile(path: string): Buffer {
  const root = openRoot('/');
  try {
    const content = readRegularInRoot(root, path);
    if (!content)
      throw new SdError('ENOENT', `${path} disappeared from the host while the container was set up`);
    return content;
  } finally {
    closeQuietly(root);
  }
}

/**
 * Reads a small file of the tree, resolving every component inside it;
 * undefined if missing. Regular files only, never blocking, capped
 * (readRegularInRoot): a FIFO or device node there is refused.
 */
export function readTreeFile(rootFd: number, path: string, limit = 1 << 20): string | undefined {
  try {
    return readRegularInRoot(rootFd, path, { maxBytes: limit })?.toString('utf8');
  } catch (e) {
    // Unreachable (ENOTDIR, ELOOP...) counts as missing, as before.
    if (e instanceof SyscallError) return undefined;
    if (e instanceof SdError && e.code === 'EFBIG')
      throw new NspawnError('EFBIG', `${path} in the container is larger than ${limit} bytes`, { cause: e });
    if (e instanceof SdError)
      throw new NspawnError(e.code, `Cannot read ${path} in the container: ${e.message}`, { cause: e });
    throw e;
  }
}

/** Whether `path` names an executable regular file inside the tree. */
export function treeHasFile(rootFd: number, path: string): boolean {
  try {
    closeQuietly(openInRoot(rootFd, path, O.PATH | O.CLOEXEC));
    return true;
  } catch {
    return false;
  }
}

/** Looks a user up in the tree's /etc/passwd and /etc/group (by name or number). */
export function lookupUser(rootFd: number, user: string): UserRecord {
  const passwd = readTreeFile(rootFd, '/etc/passwd') ?? '';
  const numeric = isDigits(user) ? Number(user) : undefined;
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f.length < 7) continue;
    const uid = Number(f[2]);
    if (f[0] === user || uid === numeric) {
      const rec: UserRecord = {
        name: f[0]!,
        uid,
        gid: Number(f[3]),
        home: f[5] || '/',
        shell: f[6] || '/bin/sh',
        groups: [],
      };
      const group = readTreeFile(rootFd, '/etc/group') ?? '';
      for (const g of group.split('\n')) {
        const gf = g.split(':');
        if (gf.length >= 4 && gf[3]!.split(',').includes(rec.name)) rec.groups.push(Number(gf[2]));
      }
      return rec;
    }
  }
  if (numeric !== undefined)
    return { name: user, uid: numeric, gid: numeric, home: '/', shell: '/bin/sh', groups: [] };
  throw new NspawnError(
    'ESRCH',
    `Failed to resolve user '${user}': no such user in the container's /etc/passwd`,
  );
}

/** The root user as systemd-nspawn assumes it when the tree has no passwd entry. */
export function rootUser(rootFd: number | undefined): UserRecord {
  if (rootFd !== undefined) {
    try {
      return lookupUser(rootFd, 'root');
    } catch {}
  }
  return { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh', groups: [] };
}

/** Finds init for --boot in the tree, or says clearly that there is none. */
export function findInit(rootFd: number): string {
  for (const c of INIT_CANDIDATES) if (treeHasFile(rootFd, c)) return c;
  throw new NspawnError(
    'ENOENT',
    `Failed to find an init in the container tree (looked for ${INIT_CANDIDATES.join(', ')})`,
  );
}

/**
 * The paths a command is tried at, in the container's view: itself when it
 * has a slash, else each $PATH directory (execve is attempted in order by the
 * spawn program, after every mount is in place).
 */
export function commandCandidates(command: string, path = DEFAULT_PATH): string[] {
  if (command.includes('/')) return [command];
  return path
    .split(':')
    .filter(Boolean)
    .map((d) => `${d.replace(/\/$/, '')}/${command}`);
}

/**
 * The first candidate that exists in the tree, else the first one (its exec
 * then fails with a clear message). For --as-pid2, whose stub init execs one
 * path only.
 */
export function resolveInTree(rootFd: number, candidates: readonly string[]): string {
  return candidates.find((c) => treeHasFile(rootFd, c)) ?? candidates[0] ?? '/bin/sh';
}

/** Opens the tree as the root of path lookups. */
export function openTreeRoot(directory: string): number {
  try {
    return openRoot(directory);
  } catch (e) {
    throw new NspawnError('ENOENT', `Directory ${directory} doesn't exist or is not accessible`, {
      cause: e,
    });
  }
}

/**
 * The host's os-release (for /run/host/os-release): the first that is a
 * regular file, checked as readHostFile reads (a FIFO there is passed over)
 * but not read, since only its path is bound.
 */
export function hostOsReleasePath(): string | undefined {
  const root = openRoot('/');
  try {
    for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
      try {
        const fd = openRegularInRoot(root, p, O.RDONLY, { missingOk: true });
        if (fd < 0) continue;
        closeQuietly(fd);
        return p;
      } catch {}
    }
    return undefined;
  } finally {
    closeQuietly(root);
  }
}

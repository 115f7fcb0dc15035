import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { AT, MNT } from '../constants.js';
import { isDigits } from '../digits.js';
import { SdError, SyscallError } from '../errors.js';
import { statAt } from '../fs/at.js';
import { umount } from './mount.js';

/** One line of /proc/<pid>/mountinfo (proc_pid_mountinfo(5)), paths unescaped. */
export interface MountInfo {
  mountId: number;
  parentId: number;
  major: number;
  minor: number;
  /** The path inside the file system that is mounted (not `/` for bind mounts of subtrees). */
  root: string;
  /** Where it is mounted, relative to the reading process's root. */
  mountPoint: string;
  /** Per-mount options: `rw`, `nosuid`, `relatime`... */
  mountOptions: string[];
  /** Optional fields: `shared:N`, `master:N`, `propagate_from:N`, `unbindable`. */
  optionalFields: string[];
  fsType: string;
  source: string;
  /** Per-superblock options, as the file system shows them. */
  superOptions: string[];
}

/** mountinfo text that does not have the kernel's shape. */
export class MountInfoError extends SdError {
  readonly line: number;
  constructor(line: number, message: string) {
    super('EBADMOUNTINFO', `mountinfo line ${line}: ${message}`);
    this.line = line;
  }
}

// The kernel writes these as \ooo in paths, sources and types (seq_escape / mangle).
const ESCAPED = /[ \t\n\\]/g;

/** Escapes a path the way the kernel writes it in mountinfo. */
export function escapeMountInfo(s: string): string {
  return s.replace(ESCAPED, (ch) => `\\${ch.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/**
 * Undoes the kernel's octal escapes (`\040` is a space). Escapes are bytes,
 * so a sequence of them can form one UTF-8 character.
 */
export function unescapeMountInfo(s: string): string {
  if (!s.includes('\\')) return s;
  const parts: Buffer[] = [];
  let last = 0;
  for (const m of s.matchAll(/\\([0-3][0-7]{2})/g)) {
    const at = m.index ?? 0;
    if (at > last) parts.push(Buffer.from(s.slice(last, at)));
    parts.push(Buffer.of(Number.parseInt(m[1]!, 8)));
    last = at + m[0].length;
  }
  if (last < s.length) parts.push(Buffer.from(s.slice(last)));
  return Buffer.concat(parts).toString('utf8');
}

function int(field: string | undefined, what: string, line: number): number {
  if (field === undefined || !isDigits(field))
    throw new MountInfoError(line, `bad ${what}: ${field ?? '(missing)'}`);
  return Number(field);
}

/** Parses one mountinfo line. `lineNo` is only used in errors. */
export function parseMountInfoLine(text: string, lineNo = 1): MountInfo {
  const f = text.split(' ');
  const sep = f.indexOf('-', 6);
  if (f.length < 10 || sep < 0)
    throw new MountInfoError(lineNo, `not a mountinfo line: ${JSON.stringify(text.slice(0, 200))}`);
  if (f.length - sep !== 4)
    throw new MountInfoError(lineNo, `expected 3 fields after '-', got ${f.length - sep - 1}`);
  const dev = /^(\d+):(\d+)$/.exec(f[2]!);
  if (!dev) throw new MountInfoError(lineNo, `bad device number: ${f[2]}`);
  return {
    mountId: int(f[0], 'mount id', lineNo),
    parentId: int(f[1], 'parent id', lineNo),
    major: Number(dev[1]),
    minor: Number(dev[2]),
    root: unescapeMountInfo(f[3]!),
    mountPoint: unescapeMountInfo(f[4]!),
    mountOptions: f[5]!.split(','),
    optionalFields: f.slice(6, sep),
    fsType: unescapeMountInfo(f[sep + 1]!),
    source: unescapeMountInfo(f[sep + 2]!),
    superOptions: f[sep + 3]!.split(','),
  };
}

/** Parses mountinfo text: one entry per non-empty line, in the kernel's order (parents first). */
export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  text.split('\n').forEach((line, i) => {
    if (line !== '') out.push(parseMountInfoLine(line, i + 1));
  });
  return out;
}

/** The mount table of a process (`self` by default) as it sees it. */
export function readMountInfo(pid: number | 'self' = 'self'): MountInfo[] {
  return parseMountInfo(readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
}

/**
 * The mounts at or below `path` (an absolute path as this process sees it;
 * symlinks are not resolved), in mount order: unmount them in reverse.
 */
export function mountsUnder(path: string, pid: number | 'self' = 'self'): MountInfo[] {
  const p = resolvePath(path);
  const prefix = p === '/' ? '/' : `${p}/`;
  return readMountInfo(pid).filter((m) => m.mountPoint === p || m.mountPoint.startsWith(prefix));
}

/**
 * Whether `path` is the root of a mount (statx STATX_ATTR_MOUNT_ROOT; for
 * kernels without it, the mount id differs from the parent directory's).
 * The last component is followed unless `noFollow`. False when it does not exist.
 */
export function isMountPoint(path: string, options: { noFollow?: boolean } = {}): boolean {
  const flags = AT.NO_AUTOMOUNT | (options.noFollow ? AT.SYMLINK_NOFOLLOW : 0);
  let st: ReturnType<typeof statAt>;
  try {
    st = statAt(AT.FDCWD, path, flags);
  } catch (e) {
    if (e instanceof SyscallError && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return false;
    throw e;
  }
  if (st.mountRoot !== undefined) return st.mountRoot;
  const abs = resolvePath(path);
  if (abs === '/') return true;
  return statAt(AT.FDCWD, resolvePath(abs, '..'), AT.NO_AUTOMOUNT).mountId !== st.mountId;
}

/**
 * Unmounts everything at or below `path`, deepest first. With `detach`,
 * busy mounts are detached lazily (MNT_DETACH) instead of failing. Mounts
 * that vanished meanwhile (unmounted by propagation) are skipped.
 */
export function umountTree(path: string, options: { detach?: boolean } = {}): number {
  const mounts = mountsUnder(path);
  let n = 0;
  for (const m of mounts.reverse()) {
    try {
      umount(m.mountPoint, options.detach ? MNT.DETACH : 0);
      n++;
    } catch (e) {
      if (e instanceof SyscallError && (e.code === 'EINVAL' || e.code === 'ENOENT')) continue;
      throw e;
    }
  }
  return n;
}

import { readFileSync } from 'node:fs';
import {
  AT,
  closeQuietly,
  ERRNO,
  fchmod,
  fchown,
  fgetxattr,
  fsetxattr,
  futimens,
  O,
  openat,
  SyscallError,
  statAt,
} from '@sd/sys';
import { ArchiveError, UnsafeEntryError } from '../errors.js';
import { ACL_XATTR, shiftAclXattr } from '../tar/acl.js';
import type { TarEntry } from '../tar/header.js';

/**
 * Owners, modes, xattrs and mtimes of extracted entries, applied on an open
 * file (chown first: it clears setuid and security.capability; the mtime
 * last, after the data).
 *
 * Speed: a file is created with its final permission bits, and the chown
 * and chmod are left out when the kernel already gave the file the owner
 * and mode the archive asks for (our fsuid/fsgid, no setgid root, no default
 * ACL, no umask bits in the way): on a distribution tree almost every file
 * is root:root 0644/0755, so a file costs openat + write + futimens + close.
 */

export class EntryMeta {
  readonly #shift: number;
  /** The owner every new entry gets by itself, or undefined when it is not certain (a setgid root). */
  readonly #ownIds: { uid: number; gid: number } | undefined;
  /** New files get exactly `mode & ~umask` (no default ACL on the root), so the chmod may be left out. */
  readonly #umask: number | undefined;

  /** `rootFd`: the (empty) target directory; `shift` is added to every uid and gid. */
  constructor(rootFd: number, shift: number) {
    this.#shift = shift;
    const st = statAt(rootFd, '', AT.EMPTY_PATH);
    const uid = process.geteuid?.();
    const gid = process.getegid?.();
    // Directories made below inherit a setgid bit (and with it the group); the archive's own modes come at the end.
    this.#ownIds =
      (st.mode & 0o2000) === 0 && uid !== undefined && gid !== undefined ? { uid, gid } : undefined;
    this.#umask = hasDefaultAcl(rootFd) ? undefined : currentUmask();
  }

  /** Whether a new entry owned by us by default needs the archive's owner set. */
  needsChown(uid: number, gid: number): boolean {
    return this.#ownIds === undefined || uid !== this.#ownIds.uid || gid !== this.#ownIds.gid;
  }

  /** The permission bits a new file is created with: the final ones where the kernel keeps them intact. */
  createMode(mode: number): number {
    return this.#umask === undefined ? 0o600 : mode & 0o777;
  }

  /** Whether the file made with createMode(mode) still needs a chmod: setuid/setgid/sticky, bits the umask removed. */
  #needsChmod(mode: number): boolean {
    return this.#umask === undefined || (mode & 0o7000) !== 0 || (mode & this.#umask) !== 0;
  }

  /**
   * The mode a new directory is made with. Its final one only when that is
   * safe to have while the extraction goes on (we run as root): we can
   * write into it without CAP_DAC_OVERRIDE (u=rwx), nobody else can
   * (no group/other write: a local user could plant names that later
   * entries meet, or move our entries out, in a 0777 directory reached
   * through the pool), no setuid/setgid/sticky bits (set by chmod only),
   * and the umask keeps every bit. Read and search bits for others open
   * nothing more than the finished tree will (its files are created with
   * their final modes already). Anything else is made 0700 and gets its
   * mode at the end, after the last entry.
   */
  dirMode(mode: number): number {
    const m = mode & 0o7777;
    return this.#umask !== undefined && (m & 0o7022) === 0 && (m & 0o700) === 0o700 && (m & this.#umask) === 0
      ? m
      : 0o700;
  }

  /**
   * Whether a directory this extraction made with mode `made` (dirMode())
   * still needs more than its mtime at the end: another owner, another
   * mode, xattrs. Most directories of a distribution tree need none.
   */
  dirNeedsMeta(e: TarEntry, made: number): boolean {
    return (
      this.needsChown(this.id(e.uid, 'uid', e.path), this.id(e.gid, 'gid', e.path)) ||
      this.#umask === undefined ||
      (made & this.#umask) !== 0 ||
      made !== (e.mode & 0o7777) ||
      e.xattrs.size > 0
    );
  }

  /** An archive's uid or gid, shifted. */
  id(v: number, what: string, path: string): number {
    const id = v + this.#shift;
    if (id > 0xfffffffe)
      throw new UnsafeEntryError(path, `${what} ${v} shifted by ${this.#shift} is out of range`);
    return id;
  }

  /** `created`: a file this extraction made with createMode(), whose owner and mode may already be right. */
  apply(fd: number, e: TarEntry, created = false): void {
    const uid = this.id(e.uid, 'uid', e.path);
    const gid = this.id(e.gid, 'gid', e.path);
    if (!created || this.needsChown(uid, gid)) fchown(fd, uid, gid, e.path);
    // A chown clears setuid/setgid, and #needsChmod is true for those anyway.
    if (!created || this.#needsChmod(e.mode)) fchmod(fd, e.mode & 0o7777, e.path);
    if (e.xattrs.size > 0) this.#xattrs(fd, e);
    futimens(fd, e.mtime, e.mtime, e.path);
  }

  #xattrs(fd: number, e: TarEntry): void {
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

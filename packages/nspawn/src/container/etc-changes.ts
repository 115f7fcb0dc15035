import {
  AT,
  closeQuietly,
  fchmod,
  fchown,
  linkat,
  O,
  openat,
  openInRoot,
  readlinkat,
  readRegularInRoot,
  renameat2,
  S_IF,
  SdError,
  statAt,
  symlinkat,
  unlinkat,
  writeAll,
} from '@sd/sys';

/**
 * The changes sd-nspawn makes in a tree's /etc (resolv.conf, localtime),
 * kept undoable until the container has started: a start that fails later
 * leaves the tree as it found it. Before an entry is changed, what was there
 * is set aside as a hard link in /etc (so its inode, owner, mode and times
 * come back unchanged), and new contents are written to a temporary file
 * that is renamed over the entry (the old inode is never written).
 *
 * Every path is an entry of /etc opened inside the tree (openInRoot): a
 * symlink planted in the tree cannot send any of this to the host.
 */

/** What lies at an entry of /etc: absent, a symlink, a regular file, or something else. */
export type EtcEntryKind = 'absent' | 'symlink' | 'regular' | 'other';

interface Change {
  name: string;
  /** The hard link of the previous entry; none when there was nothing. */
  backup?: string;
}

let serial = 0;

function isErrno(e: unknown, code: string): boolean {
  return e instanceof SdError && e.code === code;
}

export class EtcChanges {
  private etcFd: number | undefined;
  private readonly changes: Change[] = [];
  private settled = false;

  constructor(private readonly rootFd: number) {}

  /** The tree's /etc (resolved inside it), opened once; throws when there is none. */
  private etc(): number {
    this.etcFd ??= openInRoot(this.rootFd, '/etc', O.PATH | O.DIRECTORY | O.CLOEXEC);
    return this.etcFd;
  }

  private tempName(name: string, what: string): string {
    return `.#${name}.sd-nspawn-${what}-${process.pid}-${(serial++).toString(36)}`;
  }

  /** The entry's stat (not following a link), or undefined when there is none. */
  private lstat(name: string): ReturnType<typeof statAt> | undefined {
    try {
      return statAt(this.etc(), name, AT.SYMLINK_NOFOLLOW);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return undefined;
      throw e;
    }
  }

  kind(name: string): EtcEntryKind {
    const st = this.lstat(name);
    if (!st) return 'absent';
    const type = st.mode & S_IF.MT;
    return type === S_IF.LNK ? 'symlink' : type === S_IF.REG ? 'regular' : 'other';
  }

  /** Renames the new entry `temp` over /etc/NAME; `temp` is removed when that fails. */
  private replaceWith(temp: string, name: string): void {
    const etc = this.etc();
    try {
      renameat2(etc, temp, etc, name);
    } catch (e) {
      try {
        unlinkat(etc, temp);
      } catch {}
      throw e;
    }
  }

  /** Whether /etc/NAME is a regular file holding exactly `content`. */
  holds(name: string, content: Buffer): boolean {
    try {
      const now = readRegularInRoot(this.rootFd, `/etc/${name}`, {
        maxBytes: content.length,
        noFollow: true,
      });
      return now?.equals(content) === true;
    } catch {
      // Larger (EFBIG), not regular, unreadable: not the same.
      return false;
    }
  }

  /** Sets the present entry aside before its first change. */
  private keep(name: string): void {
    if (this.settled) throw new SdError('EINVAL', `/etc/${name}: changes already settled`);
    if (this.changes.some((c) => c.name === name)) return;
    const backup = this.tempName(name, 'old');
    try {
      linkat(this.etc(), name, this.etc(), backup);
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw e;
      this.changes.push({ name });
      return;
    }
    this.changes.push({ name, backup });
  }

  /** /etc/NAME becomes a regular file holding `content` (a regular file there keeps its owner and mode). */
  writeFile(name: string, content: Buffer): void {
    const etc = this.etc();
    const st = this.lstat(name);
    const old = st && (st.mode & S_IF.MT) === S_IF.REG ? st : undefined;
    this.keep(name);
    const temp = this.tempName(name, 'new');
    const fd = openat(etc, temp, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.CLOEXEC, 0o644);
    try {
      writeAll(fd, content);
      if (old) {
        fchown(fd, old.uid, old.gid, `/etc/${name}`);
        fchmod(fd, old.mode, `/etc/${name}`);
      } else fchmod(fd, 0o644, `/etc/${name}`);
    } catch (e) {
      try {
        unlinkat(etc, temp);
      } catch {}
      throw e;
    } finally {
      closeQuietly(fd);
    }
    this.replaceWith(temp, name);
  }

  /** /etc/NAME becomes a symlink to `target`. */
  symlink(name: string, target: string): void {
    const etc = this.etc();
    // Already so: nothing to change, nothing to undo.
    if (this.kind(name) === 'symlink' && readlinkat(etc, name) === target) return;
    this.keep(name);
    const temp = this.tempName(name, 'new');
    symlinkat(target, etc, temp);
    this.replaceWith(temp, name);
  }

  /** Removes /etc/NAME (not a directory); nothing there is no error. */
  remove(name: string): void {
    const kind = this.kind(name);
    if (kind === 'absent') return;
    this.keep(name);
    unlinkat(this.etc(), name);
  }

  /** Keeps the changes: the container has started. */
  commit(): void {
    if (this.settled) return;
    this.settled = true;
    for (const c of this.changes) {
      if (c.backup === undefined) continue;
      try {
        unlinkat(this.etcFd as number, c.backup);
      } catch {}
    }
    this.close();
  }

  /** Puts back what was there, newest change first; does nothing after commit(). */
  undo(): void {
    if (this.settled) return;
    this.settled = true;
    const etc = this.etcFd as number;
    let failed: unknown;
    for (const c of [...this.changes].reverse()) {
      try {
        if (c.backup !== undefined) renameat2(etc, c.backup, etc, c.name);
        else unlinkat(etc, c.name);
      } catch (e) {
        // ENOENT: gone already (the tree changed under us), nothing of ours is left there.
        if (!isErrno(e, 'ENOENT')) failed ??= e;
      }
    }
    this.close();
    if (failed) throw failed;
  }

  private close(): void {
    closeQuietly(this.etcFd);
    this.etcFd = undefined;
  }
}

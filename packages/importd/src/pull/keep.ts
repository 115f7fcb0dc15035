import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import {
  AT,
  changeInodeFlags,
  closeQuietly,
  copyTree,
  ERRNO,
  FS_FL,
  fchmodat,
  ficlone,
  isSubvolume,
  O,
  openat,
  RENAME,
  removeTree,
  renameat2,
  SyscallError,
  setSubvolumeReadOnly,
  statxFull,
} from '@sd/sys';
import { fileSource, writeSparse } from '../io.js';
import { createTempImage, discardTempImage } from '../pool/target.js';

/**
 * `--keep-download`: the verified download stays in the pool as a hidden,
 * read-only pristine copy next to the image, named as systemd-pull names
 * it: `.tar-<URL>[.<ETag>]` (a tree) or `.raw-<URL>[.<ETag>].raw`, with
 * `/ . # " '`, backslash and non-printable bytes escaped as `\xNN`. The
 * image itself is a copy of it (reflinks where the file system shares
 * extents), so changing the image never touches the kept download.
 */

const ESCAPED = new Set([...'/.#"\'\\'].map((c) => c.charCodeAt(0)));
/** systemd's limit for the whole path (_POSIX_PATH_MAX - 16); past it, a hash of the URL stands in. */
const PATH_LIMIT = 240;

/** systemd's xescape() with the pull code's set of bad characters. */
export function escapeForFilename(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out +=
      b < 0x20 || b >= 0x7f || ESCAPED.has(b)
        ? `\\x${b.toString(16).padStart(2, '0')}`
        : String.fromCharCode(b);
  }
  return out;
}

/** An ETag systemd would keep: a quoted string, strong or weak. */
function validEtag(etag: string | undefined): etag is string {
  return etag !== undefined && /^(W\/)?".*"$/.test(etag) && etag.length >= 2;
}

/** The kept download's entry name in the pool. */
export function keptName(poolDir: string, kind: 'tar' | 'raw', url: string, etag?: string): string {
  const tag = validEtag(etag) ? `.${escapeForFilename(etag)}` : '';
  const suffix = kind === 'raw' ? '.raw' : '';
  const name = `.${kind}-${escapeForFilename(url)}${tag}${suffix}`;
  if (`${poolDir}/${name}`.length < PATH_LIMIT) return name;
  // systemd hashes with siphash24; any stable hash of the URL does here.
  const h = createHash('sha256').update(url).digest('hex').slice(0, 16);
  return `.${kind}-${h}${tag}${suffix}`;
}

/** The ETags of the downloads of `url` kept in the pool (systemd sends them as If-None-Match). */
export function keptEtags(poolDir: string, kind: 'tar' | 'raw', url: string): string[] {
  const suffix = kind === 'raw' ? '.raw' : '';
  const prefixes = [
    `.${kind}-${escapeForFilename(url)}.`,
    `.${kind}-${createHash('sha256').update(url).digest('hex').slice(0, 16)}.`,
  ];
  let names: string[];
  try {
    names = readdirSync(poolDir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    const p = prefixes.find((x) => n.startsWith(x));
    if (!p || !n.endsWith(suffix) || n.length <= p.length + suffix.length) continue;
    const etag = unescapeFilename(n.slice(p.length, n.length - suffix.length));
    if (etag !== undefined && validEtag(etag)) out.push(etag);
  }
  return out;
}

/** The kept download of `url` whose ETag is `etag`, if it is there. */
export function keptPath(
  poolDir: string,
  kind: 'tar' | 'raw',
  url: string,
  etag: string,
): string | undefined {
  const path = `${poolDir}/${keptName(poolDir, kind, url, etag)}`;
  return existsSync(path) ? path : undefined;
}

function unescapeFilename(s: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\') {
      const m = /^x([0-9a-f]{2})/.exec(s.slice(i + 1, i + 4));
      if (!m) return undefined;
      bytes.push(Number.parseInt(m[1]!, 16));
      i += 3;
    } else bytes.push(s.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * Read-only as machined marks a read-only image: a read-only subvolume, or
 * the immutable flag (not the top directory's mode, which is the image's
 * own "/" and must come back intact in a copy). Where the file system has no
 * inode flags, the write bits go, as systemd does it.
 */
function makeReadOnly(path: string, kind: 'tar' | 'raw'): void {
  if (kind === 'tar' && isSubvolume(path)) {
    const fd = openat(AT.FDCWD, path, O.RDONLY | O.DIRECTORY);
    try {
      setSubvolumeReadOnly(fd, true, path);
    } finally {
      closeQuietly(fd);
    }
    return;
  }
  const st = statxFull(AT.FDCWD, path);
  if (kind === 'raw') fchmodat(AT.FDCWD, path, st.mode & 0o7555);
  try {
    immutable(path, true);
  } catch {
    if (kind === 'tar') fchmodat(AT.FDCWD, path, st.mode & 0o7555);
  }
}

function immutable(path: string, on: boolean): void {
  const fd = openat(AT.FDCWD, path, O.RDONLY | O.NONBLOCK | O.NOFOLLOW);
  try {
    changeInodeFlags(fd, on ? FS_FL.IMMUTABLE : 0, FS_FL.IMMUTABLE, path);
  } finally {
    closeQuietly(fd);
  }
}

/**
 * Copies the finished (verified) temporary image `source` to the kept
 * name, through a hidden temporary of its own (removed on failure; a crash
 * leaves a `.#import-<pid>-` name that sd-importd removes at start). An
 * older kept copy of the same name is replaced. Returns the kept path.
 */
export async function keepDownload(
  poolDir: string,
  kind: 'tar' | 'raw',
  source: string,
  url: string,
  etag: string | undefined,
): Promise<string> {
  const t = createTempImage(poolDir, 'keep', kind === 'tar' ? 'tree' : 'raw');
  const kept = `${poolDir}/${keptName(poolDir, kind, url, etag)}`;
  try {
    if (kind === 'tar') await copyTree(source, t.path, { into: true });
    else await copyRaw(source, t.path);
    if (existsSync(kept)) removeKept(kept, kind);
    try {
      renameat2(AT.FDCWD, t.path, AT.FDCWD, kept, RENAME.NOREPLACE);
    } catch (e) {
      // Another pull of the same URL kept it meanwhile: theirs stays.
      if (!(e instanceof SyscallError && e.errno === ERRNO.EEXIST)) throw e;
      discardTempImage(t);
      return kept;
    }
  } catch (e) {
    discardTempImage(t);
    throw e;
  }
  // After the rename: an immutable directory cannot be renamed.
  try {
    makeReadOnly(kept, kind);
  } catch (e) {
    removeKept(kept, kind);
    throw e;
  }
  return kept;
}

/** A reflink where the file system has them, else a sparse copy. */
async function copyRaw(source: string, dest: string): Promise<void> {
  const out = openat(AT.FDCWD, dest, O.WRONLY | O.NOFOLLOW);
  try {
    const inp = openat(AT.FDCWD, source, O.RDONLY | O.NOFOLLOW);
    let cloned: boolean;
    try {
      cloned = ficlone(out, inp) === 0;
    } finally {
      closeQuietly(inp);
    }
    if (!cloned) await writeSparse(out, fileSource(source));
  } finally {
    closeQuietly(out);
  }
}

/** Removes a kept download (made writable first). */
export function removeKept(path: string, kind: 'tar' | 'raw'): void {
  if (kind === 'tar' && isSubvolume(path)) {
    const fd = openat(AT.FDCWD, path, O.RDONLY | O.DIRECTORY);
    try {
      setSubvolumeReadOnly(fd, false, path);
    } finally {
      closeQuietly(fd);
    }
  } else {
    try {
      immutable(path, false);
    } catch {}
  }
  removeTree(path);
}

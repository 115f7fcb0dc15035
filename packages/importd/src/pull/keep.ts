import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  AT,
  closeQuietly,
  copyTree,
  ERRNO,
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

/** Read-only as systemd makes a kept download: a read-only subvolume, or no write bits on the top. */
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
  fchmodat(AT.FDCWD, path, st.mode & 0o7555);
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
    makeReadOnly(t.path, kind);
    if (existsSync(kept)) removeKept(kept, kind);
    try {
      renameat2(AT.FDCWD, t.path, AT.FDCWD, kept, RENAME.NOREPLACE);
    } catch (e) {
      // Another pull of the same URL kept it meanwhile: theirs stays.
      if (!(e instanceof SyscallError && e.errno === ERRNO.EEXIST)) throw e;
      discardTempImage(t);
    }
    return kept;
  } catch (e) {
    discardTempImage(t);
    throw e;
  }
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

function removeKept(path: string, kind: 'tar' | 'raw'): void {
  if (kind === 'tar' && isSubvolume(path)) {
    const fd = openat(AT.FDCWD, path, O.RDONLY | O.DIRECTORY);
    try {
      setSubvolumeReadOnly(fd, false, path);
    } finally {
      closeQuietly(fd);
    }
  }
  removeTree(path);
}

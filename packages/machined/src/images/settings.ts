import { dirname } from 'node:path';
import {
  AT,
  closeQuietly,
  DataCopier,
  ERRNO,
  fchmod,
  O,
  openat,
  RENAME,
  renameat2,
  SyscallError,
  unlinkat,
} from '@sd/sys';
import type { ImagePoolPaths } from './paths.js';
import type { ImageInfo } from './types.js';

/**
 * An image's `.nspawn` settings file travels with it, as in systemd: it may
 * be in /etc/systemd/nspawn, /run/systemd/nspawn or next to the image, and
 * remove, rename and clone act on each of them. Raw images also carry
 * their .roothash/.usrhash/.verity companions next to the file.
 */

const { ENOENT } = ERRNO;
const { EEXIST } = ERRNO;

function settingsDirs(img: ImageInfo, paths: ImagePoolPaths): string[] {
  return [...new Set([...paths.settingsDirs, dirname(img.path)])];
}

/** The auxiliary files of an image that exist: [directory, suffix] pairs. */
export function auxiliaryFiles(img: ImageInfo, paths: ImagePoolPaths): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const check = (dir: string, suffix: string) => {
    try {
      closeQuietly(openat(AT.FDCWD, `${dir}/${img.name}${suffix}`, O.PATH | O.NOFOLLOW));
      out.push([dir, suffix]);
    } catch {}
  };
  for (const dir of settingsDirs(img, paths)) check(dir, '.nspawn');
  if (img.type === 'raw') for (const s of ['.roothash', '.usrhash', '.verity']) check(dirname(img.path), s);
  return out;
}

export function removeAuxiliary(img: ImageInfo, paths: ImagePoolPaths): void {
  for (const [dir, suffix] of auxiliaryFiles(img, paths)) {
    try {
      unlinkat(AT.FDCWD, `${dir}/${img.name}${suffix}`);
    } catch (e) {
      if (!(e instanceof SyscallError && e.errno === ENOENT)) throw e;
    }
  }
}

export function renameAuxiliary(img: ImageInfo, newName: string, paths: ImagePoolPaths): void {
  for (const [dir, suffix] of auxiliaryFiles(img, paths)) {
    try {
      renameat2(
        AT.FDCWD,
        `${dir}/${img.name}${suffix}`,
        AT.FDCWD,
        `${dir}/${newName}${suffix}`,
        RENAME.NOREPLACE,
      );
    } catch (e) {
      if (!(e instanceof SyscallError && (e.errno === ENOENT || e.errno === EEXIST))) throw e;
    }
  }
}

/** Copies each settings file to NEW.nspawn in the same directory (an existing one is left alone). */
export function cloneAuxiliary(img: ImageInfo, newName: string, paths: ImagePoolPaths): void {
  for (const [dir, suffix] of auxiliaryFiles(img, paths)) {
    if (suffix !== '.nspawn') continue;
    const target = `${dir}/${newName}${suffix}`;
    const tmp = `${dir}/.#${newName}${suffix}${process.pid}`;
    const s = openat(AT.FDCWD, `${dir}/${img.name}${suffix}`, O.RDONLY);
    let d: number | undefined;
    try {
      d = openat(AT.FDCWD, tmp, O.WRONLY | O.CREAT | O.TRUNC | O.NOFOLLOW, 0o644);
      new DataCopier('auto').copySync(s, d, tmp);
      fchmod(d, 0o644, tmp);
      closeQuietly(d);
      d = undefined;
      try {
        renameat2(AT.FDCWD, tmp, AT.FDCWD, target, RENAME.NOREPLACE);
      } catch (e) {
        unlinkat(AT.FDCWD, tmp);
        if (!(e instanceof SyscallError && e.errno === EEXIST)) throw e;
      }
    } finally {
      closeQuietly(s, d);
    }
  }
}

import { destroySubvolume, isBtrfsFd, setSubvolumeReadOnly } from '../btrfs/btrfs.js';
import { AT, O, S_IF } from '../constants.js';
import { SyscallError } from '../errors.js';
import { closeQuietly, openat } from '../fd/fd.js';
import { unlinkat } from '../fs/at.js';
import { changeInodeFlags, FS_FL } from '../ioctl/fs-flags.js';
import { readDirFd } from './file.js';
import { statxFull } from './stat.js';

/**
 * `rm -rf` by directory fds without following anything, that also destroys
 * btrfs subvolumes (nested ones included, read-only ones too) and clears
 * the immutable and append-only flags that would block it.
 */

const ENOENT = 2;
const ENOTEMPTY = 39;
const EPERM = 1;
const EINVAL = 22;
const SUBVOL_INO = 256n;

function clearFlags(fd: number, path: string): void {
  try {
    changeInodeFlags(fd, 0, FS_FL.IMMUTABLE | FS_FL.APPEND, path);
  } catch {
    // Not every file system has inode flags; the unlink will say what is wrong.
  }
}

function removeChildren(fd: number, path: string, onBtrfs: boolean): void {
  for (const { name } of readDirFd(fd, path)) removeAt(fd, name, `${path}/${name}`, onBtrfs);
}

function removeAt(dirFd: number, name: string, path: string, onBtrfs: boolean): void {
  const st = statxFull(dirFd, name, AT.SYMLINK_NOFOLLOW);
  if ((st.mode & S_IF.MT) !== S_IF.DIR) {
    if (st.attributes & 0x30n) {
      const fd = openat(dirFd, name, O.RDONLY | O.NOFOLLOW | O.NONBLOCK);
      try {
        clearFlags(fd, path);
      } finally {
        closeQuietly(fd);
      }
    }
    unlinkat(dirFd, name);
    return;
  }
  const fd = openat(dirFd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
  try {
    if (st.attributes & 0x30n) clearFlags(fd, path);
    if (onBtrfs && st.ino === SUBVOL_INO) {
      try {
        destroySubvolume(dirFd, name);
        return;
      } catch (e) {
        if (
          !(e instanceof SyscallError && (e.errno === ENOTEMPTY || e.errno === EPERM || e.errno === EINVAL))
        )
          throw e;
        // Nested subvolumes inside (or no permission to destroy): empty it first.
        setSubvolumeReadOnly(fd, false, path);
        removeChildren(fd, path, onBtrfs);
        destroySubvolume(dirFd, name);
        return;
      }
    }
    removeChildren(fd, path, onBtrfs);
  } finally {
    closeQuietly(fd);
  }
  unlinkat(dirFd, name, AT.REMOVEDIR);
}

/** Removes `path` and everything below it; a missing path is not an error unless `mustExist`. */
export function removeTree(path: string, mustExist = false): void {
  const slash = path.replace(/\/+$/, '').lastIndexOf('/');
  const parent = slash <= 0 ? (slash === 0 ? '/' : '.') : path.slice(0, slash);
  const name = path.replace(/\/+$/, '').slice(slash + 1);
  let dirFd: number;
  try {
    dirFd = openat(AT.FDCWD, parent, O.RDONLY | O.DIRECTORY);
  } catch (e) {
    if (!mustExist && e instanceof SyscallError && e.errno === ENOENT) return;
    throw e;
  }
  try {
    try {
      statxFull(dirFd, name, AT.SYMLINK_NOFOLLOW);
    } catch (e) {
      if (!mustExist && e instanceof SyscallError && e.errno === ENOENT) return;
      throw e;
    }
    removeAt(dirFd, name, path, isBtrfsFd(dirFd));
  } finally {
    closeQuietly(dirFd);
  }
}

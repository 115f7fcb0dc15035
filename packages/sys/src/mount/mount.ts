import { SYS } from '../arch/index.js';
import { AT, MOVE_MOUNT, OPEN_TREE } from '../constants.js';
import { SyscallError } from '../errors.js';
import { closeQuietly, read, setNonBlocking } from '../fd/fd.js';
import { check, checkNum, koffi, lazyFunc } from '../ffi/libc.js';
import { assertValidPath } from '../fs/at.js';
import { encodeMountAttr, type MountAttr } from './attr.js';

export { encodeMountAttr, type MountAttr } from './attr.js';

/**
 * Mount system calls for the calling process's mount namespace. In the Node
 * process that is the host's (ARCHITECTURE.md §2: never change it), so these are
 * for work on the host side — mounting into a tree before a container starts,
 * detached mounts made with open_tree()/fsmount() and attached later — while
 * everything inside a new mount namespace belongs in a SpawnProgram.
 */

const c = {
  mount: lazyFunc(
    'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
  ),
  umount2: lazyFunc('int umount2(const char *target, int flags)'),
  pivot_root: lazyFunc('syscall', 'long', ['long', 'str', 'str']),
  open_tree: lazyFunc('syscall', 'long', ['long', 'int', 'str', 'uint']),
  move_mount: lazyFunc('syscall', 'long', ['long', 'int', 'str', 'int', 'str', 'uint']),
  mount_setattr: lazyFunc('syscall', 'long', ['long', 'int', 'str', 'uint', 'uint8_t *', 'size_t']),
  fsopen: lazyFunc('syscall', 'long', ['long', 'str', 'uint']),
  fsconfig: lazyFunc('syscall', 'long', ['long', 'int', 'uint', 'str', 'uint8_t *', 'int']),
  fsmount: lazyFunc('syscall', 'long', ['long', 'int', 'uint', 'uint']),
};

export const FSOPEN_CLOEXEC = 1;
export const FSMOUNT_CLOEXEC = 1;

/** fsconfig(2) commands. */
export const FSCONFIG = {
  SET_FLAG: 0,
  SET_STRING: 1,
  SET_BINARY: 2,
  SET_PATH: 3,
  SET_PATH_EMPTY: 4,
  SET_FD: 5,
  CMD_CREATE: 6,
  CMD_RECONFIGURE: 7,
  CMD_CREATE_EXCL: 8,
} as const;

/** mount(2). `flags` are MS.*; `data` is the file system's option string. */
export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null = null,
): void {
  assertValidPath(target, 'mount target');
  if (source !== null) assertValidPath(source, 'mount source', true);
  check('mount', c.mount(source, target, fstype, flags, data), target);
}

/** umount2(2). `flags`: MNT.DETACH for a lazy unmount, MNT.FORCE, UMOUNT_NOFOLLOW. */
export function umount(target: string, flags = 0): void {
  assertValidPath(target, 'umount target');
  check('umount2', c.umount2(target, flags), target);
}

/**
 * pivot_root(2). Only meaningful in a process with a mount namespace of its
 * own, which the Node process never has: exposed for completeness and for
 * tests that expect the refusal. Containers pivot in a SpawnProgram
 * (SpawnProgram.pivotRoot()).
 */
export function pivotRoot(newRoot: string, putOld: string): void {
  assertValidPath(newRoot, 'new root');
  assertValidPath(putOld, 'put_old');
  checkNum('pivot_root', c.pivot_root(SYS.pivot_root, newRoot, putOld), newRoot);
}

/**
 * open_tree(2): an fd of the mount at `path` (or, with OPEN_TREE.CLONE, a
 * detached copy of it; add AT.RECURSIVE for its submounts too). The fd is
 * always close-on-exec.
 */
export function openTree(dirfd: number, path: string, flags: number): number {
  assertValidPath(path, 'path', (flags & AT.EMPTY_PATH) !== 0);
  return checkNum(
    'open_tree',
    c.open_tree(SYS.open_tree, dirfd, path, flags | OPEN_TREE.CLOEXEC),
    path || undefined,
  );
}

/** move_mount(2): attaches (or moves) a mount. Use MOVE_MOUNT.F_EMPTY_PATH with an fd and ''. */
export function moveMount(
  fromDirfd: number,
  fromPath: string,
  toDirfd: number,
  toPath: string,
  flags: number,
): void {
  assertValidPath(fromPath, 'source path', (flags & MOVE_MOUNT.F_EMPTY_PATH) !== 0);
  assertValidPath(toPath, 'target path', (flags & MOVE_MOUNT.T_EMPTY_PATH) !== 0);
  checkNum(
    'move_mount',
    c.move_mount(SYS.move_mount, fromDirfd, fromPath, toDirfd, toPath, flags),
    toPath || fromPath || undefined,
  );
}

/** Attaches a detached mount fd (from openTree/fsmount) at `target`. */
export function attachMount(mountFd: number, target: string, toDirfd: number = AT.FDCWD): void {
  moveMount(mountFd, '', toDirfd, target, MOVE_MOUNT.F_EMPTY_PATH);
}

/**
 * mount_setattr(2). `flags`: AT.RECURSIVE for the whole subtree, AT.EMPTY_PATH
 * to change the mount `dirfd` refers to. An idmapped mount (MOUNT_ATTR.IDMAP)
 * must be made on a detached mount (open_tree with OPEN_TREE.CLONE) that is
 * not idmapped yet.
 */
export function mountSetattr(dirfd: number, path: string, flags: number, attr: MountAttr): void {
  assertValidPath(path, 'path', (flags & AT.EMPTY_PATH) !== 0);
  checkNum(
    'mount_setattr',
    c.mount_setattr(SYS.mount_setattr, dirfd, path, flags, encodeMountAttr(attr), 32),
    path || undefined,
  );
}

/** fsopen(2): a file system context for `fsType`; configure it with fsconfig(). Close-on-exec. */
export function fsopen(fsType: string, flags = 0): number {
  assertValidPath(fsType, 'file system type');
  return checkNum('fsopen', c.fsopen(SYS.fsopen, fsType, flags | FSOPEN_CLOEXEC), fsType);
}

/**
 * fsconfig(2). `value` is a string for SET_STRING/SET_PATH, bytes for
 * SET_BINARY, null otherwise (`aux` carries the fd for SET_FD). When the call
 * fails, the file system's own explanation from the context's message log is
 * added to the error.
 */
export function fsconfig(
  fsFd: number,
  cmd: number,
  key: string | null = null,
  value: string | Buffer | null = null,
  aux = 0,
): void {
  if (key !== null) assertValidPath(key, 'fsconfig key');
  let bytes: Buffer | null = null;
  if (typeof value === 'string') {
    assertValidPath(value, 'fsconfig value', true);
    bytes = Buffer.concat([Buffer.from(value), Buffer.of(0)]);
  } else if (value) bytes = value;
  const ret = c.fsconfig(SYS.fsconfig, fsFd, cmd, key, bytes, aux);
  if (ret < 0) {
    const err = new SyscallError('fsconfig', koffi.errno(), key ?? undefined);
    const log = fsContextMessages(fsFd);
    if (log.length) err.message += ` (${log.join('; ')})`;
    throw err;
  }
}

/** Drains the messages ("e ...", "w ...", "i ...") a file system context has logged. */
export function fsContextMessages(fsFd: number): string[] {
  const out: string[] = [];
  try {
    setNonBlocking(fsFd);
    const buf = Buffer.alloc(1024);
    for (let i = 0; i < 16; i++) {
      const n = read(fsFd, buf);
      if (n <= 0) break;
      out.push(buf.toString('utf8', 0, n).trimEnd());
    }
  } catch {
    // ENODATA ends the log; a context without a log has nothing to add.
  }
  return out;
}

/** fsmount(2): a detached mount of a created context. `attrFlags` are MOUNT_ATTR.*. Close-on-exec. */
export function fsmount(fsFd: number, flags = 0, attrFlags = 0): number {
  return checkNum('fsmount', c.fsmount(SYS.fsmount, fsFd, flags | FSMOUNT_CLOEXEC, attrFlags));
}

/**
 * The new mount API in one call: a detached mount of `fsType` with `options`
 * (true for a flag, a string for a value). Attach it with attachMount().
 */
export function mountFs(
  fsType: string,
  options: Record<string, string | boolean> = {},
  attrFlags = 0,
  source?: string,
): number {
  const fsFd = fsopen(fsType);
  try {
    if (source !== undefined) fsconfig(fsFd, FSCONFIG.SET_STRING, 'source', source);
    for (const [key, value] of Object.entries(options)) {
      if (value === false) continue;
      if (value === true) fsconfig(fsFd, FSCONFIG.SET_FLAG, key);
      else fsconfig(fsFd, FSCONFIG.SET_STRING, key, value);
    }
    fsconfig(fsFd, FSCONFIG.CMD_CREATE);
    return fsmount(fsFd, 0, attrFlags);
  } finally {
    closeQuietly(fsFd);
  }
}

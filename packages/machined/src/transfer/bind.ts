import {
  AT,
  CAP,
  CLONE,
  clearAmbientCapabilities,
  closeQuietly,
  MOUNT_ATTR,
  MOVE_MOUNT,
  mountSetattr,
  O,
  OPEN_TREE,
  openTree,
  S_IF,
  SdError,
  SpawnError,
  SpawnProgram,
  setCapabilities,
  statAt,
  syscallNumber,
} from '@sd/sys';
import { runAbandonable } from '../inspect/read-in-machine.js';

/**
 * BindMountMachine: the host's `source` as a detached mount (open_tree
 * OPEN_TREE_CLONE, made read-only with mount_setattr when asked), moved
 * onto `dest` inside the machine by a helper process. The helper resolves
 * `dest` (and makes what is missing of it) itself, chrooted at the leader's
 * root, so a planted symlink resolves inside the machine; and because a
 * file system inside the machine (FUSE) can stall any lookup, the daemon
 * gives up on the helper after a timeout instead of resolving anything
 * there on its own thread.
 */
export async function bindMountIntoMachine(o: {
  rootFd: number;
  pidfd: number;
  source: string;
  dest: string;
  readOnly: boolean;
  mkdir: boolean;
  /** fsuid/fsgid that create missing directories (the machine's root). */
  creator?: { uid: number; gid: number };
  timeoutMs?: number;
}): Promise<void> {
  if (!o.source.startsWith('/') || !o.dest.startsWith('/'))
    throw new SdError('EINVAL', 'Source and destination paths must be absolute');
  const tree = openTree(AT.FDCWD, o.source, OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC | AT.RECURSIVE);
  try {
    if (o.readOnly) mountSetattr(tree, '', AT.EMPTY_PATH | AT.RECURSIVE, { set: MOUNT_ATTR.RDONLY });
    const isDir = (statAt(tree, '', AT.EMPTY_PATH).mode & S_IF.MT) === S_IF.DIR;
    const p = buildBindProgram({ ...o, tree, isDir, creator: o.creator ?? { uid: 0, gid: 0 } });
    try {
      await runAbandonable(p, {
        what: `Bind mounting onto ${o.dest} in the machine`,
        timeoutMs: o.timeoutMs ?? 2000,
      });
    } catch (e) {
      if (e instanceof SpawnError)
        throw new SdError(e.code, `Cannot bind mount onto ${o.dest} in the machine: ${e.message}`, {
          cause: e,
        });
      throw e;
    }
  } finally {
    closeQuietly(tree);
  }
}

/**
 * The bind helper: it stays in the host's PID namespace (nothing inside
 * can see it), has a memory of its own (spawned with shareMemory: false),
 * holds only the capabilities that joining a mount namespace, chroot,
 * switching the file system ids and moving a mount need, resolves `dest`
 * inside the machine's root, and exits.
 */
export function buildBindProgram(o: {
  pidfd: number;
  rootFd: number;
  tree: number;
  dest: string;
  isDir: boolean;
  mkdir: boolean;
  creator: { uid: number; gid: number };
}): SpawnProgram {
  const p = new SpawnProgram().waitForParent();
  clearAmbientCapabilities(p);
  const need = [CAP.SYS_ADMIN, CAP.SYS_CHROOT, CAP.SETUID, CAP.SETGID].reduce(
    (m, c) => m | (1n << BigInt(c)),
    0n,
  );
  // setns(pidfd) checks that we may ptrace the leader: drop after it.
  p.setns(o.pidfd, CLONE.NEWNS);
  setCapabilities(p, { effective: need, permitted: need, inheritable: 0n });
  // Everything inside is looked up and made as the machine's root, with no
  // DAC override (switching the fsuid away from 0 drops the fs capabilities).
  p.syscall('setfsgid', syscallNumber('setfsgid'), [o.creator.gid]);
  p.syscall('setfsuid', syscallNumber('setfsuid'), [o.creator.uid]);
  p.syscall('fchdir', p.sys.fchdir, [o.rootFd]);
  p.chroot('.');
  const parts = o.dest.split('/').filter(Boolean);
  const dest = `/${parts.join('/')}`;
  if (o.mkdir) {
    // Each step may find the directory there already (EEXIST).
    const dirs = o.isDir ? parts : parts.slice(0, -1);
    dirs.forEach((_, i) => p.mkdir(`/${dirs.slice(0, i + 1).join('/')}`, 0o755, { ignoreErrno: true }));
    // O_EXCL: a file is only made, never opened (no FIFO, device or link there is touched).
    if (!o.isDir && parts.length)
      p.openat(AT.FDCWD, dest, O.WRONLY | O.CREAT | O.EXCL | O.CLOEXEC, 0o644, { ignoreErrno: true });
  }
  p.moveMount(o.tree, '', AT.FDCWD, dest, MOVE_MOUNT.F_EMPTY_PATH, { label: `bind mount onto ${dest}` });
  p.exit(0);
  return p;
}

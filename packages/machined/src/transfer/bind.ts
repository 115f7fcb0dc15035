import {
  AT,
  CAP,
  CLONE,
  clearAmbientCapabilities,
  closeQuietly,
  MOUNT_ATTR,
  MOVE_MOUNT,
  mkdirInRoot,
  mountSetattr,
  O,
  OPEN_TREE,
  openat,
  openInRoot,
  openTree,
  S_IF,
  SdError,
  SpawnProgram,
  setCapabilities,
  spawn,
  statAt,
  withFsIds,
} from '@sd/sys';

/**
 * BindMountMachine: the host's `source` as a detached mount (open_tree
 * OPEN_TREE_CLONE, made read-only with mount_setattr when asked), moved
 * onto `dest` inside the machine by a spawn program that has joined the
 * machine's mount namespace. `dest` is resolved in the parent inside the
 * machine's root (RESOLVE_IN_ROOT) to an fd, and the move targets that fd:
 * no path is looked up again in the child.
 */
export async function bindMountIntoMachine(o: {
  rootFd: number;
  pidfd: number;
  source: string;
  dest: string;
  readOnly: boolean;
  mkdir: boolean;
  /** fsuid/fsgid that create missing directories (the machine's root: see withFsIds). */
  creator?: { uid: number; gid: number };
}): Promise<void> {
  if (!o.source.startsWith('/') || !o.dest.startsWith('/'))
    throw new SdError('EINVAL', 'Source and destination paths must be absolute');
  const tree = openTree(AT.FDCWD, o.source, OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC | AT.RECURSIVE);
  let target: number | undefined;
  try {
    if (o.readOnly) mountSetattr(tree, '', AT.EMPTY_PATH | AT.RECURSIVE, { set: MOUNT_ATTR.RDONLY });
    const isDir = (statAt(tree, '', AT.EMPTY_PATH).mode & S_IF.MT) === S_IF.DIR;
    const c = o.creator;
    const open = () => openTarget(o.rootFd, o.dest, isDir, o.mkdir);
    target = c && (c.uid !== 0 || c.gid !== 0) ? withFsIds(c.uid, c.gid, open) : open();
    const p = buildBindProgram(o.pidfd, tree, target);
    const child = await spawn(p, { shareMemory: false });
    const st = await child.exited;
    if (st.code !== 0) throw new SdError('EIO', `Bind mount helper failed (${JSON.stringify(st)})`);
  } finally {
    closeQuietly(tree, target);
  }
}

/**
 * The bind helper: it stays in the host's PID namespace (nothing inside
 * can see it), has a memory of its own (spawned with shareMemory: false)
 * and holds only the two capabilities that joining a mount namespace and
 * moving a mount need, then exits.
 */
export function buildBindProgram(pidfd: number, tree: number, target: number): SpawnProgram {
  const p = new SpawnProgram();
  clearAmbientCapabilities(p);
  const need = (1n << BigInt(CAP.SYS_ADMIN)) | (1n << BigInt(CAP.SYS_CHROOT));
  setCapabilities(p, { effective: need, permitted: need, inheritable: 0n });
  p.setns(pidfd, CLONE.NEWNS);
  p.moveMount(tree, '', target, '', MOVE_MOUNT.F_EMPTY_PATH | MOVE_MOUNT.T_EMPTY_PATH);
  p.exit(0);
  return p;
}

function openTarget(rootFd: number, dest: string, isDir: boolean, mkdir: boolean): number {
  try {
    return openInRoot(rootFd, dest, O.PATH);
  } catch (e) {
    if (!mkdir) throw e;
  }
  const slash = dest.replace(/\/+$/, '').lastIndexOf('/');
  const parent = slash <= 0 ? '/' : dest.slice(0, slash);
  mkdirInRoot(rootFd, isDir ? dest : parent, 0o755, { parents: true });
  if (!isDir) {
    const dir = openInRoot(rootFd, parent, O.RDONLY | O.DIRECTORY);
    try {
      closeQuietly(openat(dir, dest.slice(slash + 1), O.WRONLY | O.CREAT | O.NOFOLLOW, 0o644));
    } finally {
      closeQuietly(dir);
    }
  }
  return openInRoot(rootFd, dest, O.PATH);
}

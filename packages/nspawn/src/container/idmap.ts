import { basename, dirname } from 'node:path';
import { AT, closeQuietly, MOUNT_ATTR, mountSetattr, OPEN_TREE, openTree, statAt } from '@sd/sys';
import { NspawnError } from '../errors.js';
import type { Settings } from '../settings/settings.js';
import type { CustomMounts } from './custom-mounts.js';
import type { prepareCustomMounts } from './prepare.js';

/**
 * Whether the tree is shown through an idmapped mount under -U: always for
 * 'map'; never for 'off' (the tree is owned by the range already); for
 * 'auto', unless the tree's root directory is owned by the range's first
 * uid already, as systemd-nspawn decides it.
 */
export function idmapOwnership(
  mode: Settings['privateUsersOwnership'],
  rootFd: number,
  shift: number,
): boolean {
  if (mode === 'map') return true;
  if (mode === 'off') return false;
  return statAt(rootFd, '', AT.EMPTY_PATH).uid !== shift;
}

/**
 * Idmapped mounts of the tree and of the --bind sources for the container's
 * user namespace. A bind asked for with `idmap` must get one; the others
 * get one where their file system supports it (root-owned host files are
 * then the container root's, as without a user namespace), else keep the
 * host's owners (seen as nobody inside).
 */
export function idmapMounts(
  userns: number,
  tree: string,
  root: number,
  custom: ReturnType<typeof prepareCustomMounts>,
): void {
  const idmap = (fd: number) =>
    mountSetattr(fd, '', AT.EMPTY_PATH | AT.RECURSIVE, { set: MOUNT_ATTR.IDMAP, usernsFd: userns });
  const refuse = (what: string, e: unknown) =>
    new NspawnError(
      'EOPNOTSUPP',
      `Failed to make an idmapped mount of ${what} for the user namespace (the file system may not support idmapped mounts; --private-users=no runs without one)`,
      { cause: e },
    );
  try {
    idmap(root);
  } catch (e) {
    throw refuse(tree, e);
  }
  for (const b of custom.binds) {
    if (b.idmap === false) continue;
    try {
      idmap(b.fd);
    } catch (e) {
      if (b.idmap) throw refuse(b.source, e);
    }
  }
}

/**
 * The layers of each --overlay as idmapped detached mounts, named for the
 * child by /proc/self/fd paths (it inherits the fds and resolves them before
 * pivot_root): an overlay cannot be idmapped itself, its layers can. The
 * upper and work directories share one idmapped mount of their parent, as
 * overlayfs wants them on the same mount. Returns the fds to close.
 */
export function idmapOverlayLayers(userns: number, custom: CustomMounts): number[] {
  const fds: number[] = [];
  const idmapped = (dir: string) => {
    const fd = openTree(AT.FDCWD, dir, OPEN_TREE.CLONE | OPEN_TREE.CLOEXEC);
    fds.push(fd);
    try {
      mountSetattr(fd, '', AT.EMPTY_PATH, { set: MOUNT_ATTR.IDMAP, usernsFd: userns });
    } catch (e) {
      throw new NspawnError('EOPNOTSUPP', `Failed to make an idmapped mount of overlay layer ${dir}`, {
        cause: e,
      });
    }
    return `/proc/self/fd/${fd}`;
  };
  try {
    for (const o of custom.overlays) {
      o.lower = o.lower.map(idmapped);
      if (o.upper && o.work) {
        const parent = idmapped(dirname(o.upper));
        o.upper = `${parent}/${basename(o.upper)}`;
        o.work = `${parent}/${basename(o.work)}`;
      }
    }
  } catch (e) {
    closeQuietly(...fds);
    throw e;
  }
  return fds;
}

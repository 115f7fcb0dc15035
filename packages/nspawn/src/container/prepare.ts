import { fstatSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { assertValidMachineName, machineNameFromPath } from '@sd/basic';
import {
  AT,
  closeQuietly,
  getRandom,
  LOCK,
  MOUNT_ATTR,
  mountSetattr,
  O,
  OPEN_TREE,
  open,
  openInRoot,
  openTree,
  removeTree,
  tryFlock,
} from '@sd/sys';
import { NspawnError } from '../errors.js';
import { NotifySocket } from '../notify/notify.js';
import type { Settings } from '../settings/settings.js';
import type { CustomMounts } from './custom-mounts.js';
import { holdNewPath, pruneDeadPaths, randomSuffix } from './held-path.js';
import type { DetachedMounts } from './plan.js';

/** Parent-side preparation: names, the tree lock, and the host objects the container gets. */

/** The machine name: --machine, else derived from the directory's name (the host's name for /). */
export function machineNameOf(settings: Settings): string {
  try {
    if (settings.machine !== undefined) return assertValidMachineName(settings.machine);
    // An image's name without its .raw suffix (machineNameFromPath), as systemd-nspawn names it.
    const dir = resolve(settings.image ?? settings.directory ?? '.');
    return dir === '/'
      ? machineNameFromPath(process.getBuiltinModule('node:os').hostname().split('.')[0]!)
      : machineNameFromPath(dir);
  } catch (e) {
    throw new NspawnError('EINVAL', (e as Error).message, { cause: e });
  }
}

export function newUuid(): string {
  const b = getRandom(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b.toString('hex');
}

/** Checks the directory and refuses what systemd-nspawn refuses. */
export function checkDirectory(settings: Settings): string {
  if (settings.directory === undefined)
    throw new NspawnError('EINVAL', 'No directory given: use -D/--directory=PATH');
  const dir = resolve(settings.directory);
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(dir);
  } catch {
    throw new NspawnError('ENOENT', `Directory ${settings.directory} doesn't exist`);
  }
  if (!st.isDirectory()) throw new NspawnError('ENOTDIR', `${settings.directory} is not a directory`);
  if (dir === '/' && settings.volatile === 'no')
    throw new NspawnError(
      'EINVAL',
      'Spawning container on root directory is not supported. Consider using --volatile=yes or --volatile=state.',
    );
  return dir;
}

/**
 * One writable instance per tree: an exclusive flock on the directory, or a
 * shared one when the tree is only read (read-only, volatile).
 */
export function lockTree(dir: string, shared: boolean): number {
  const fd = open(dir, O.RDONLY | O.DIRECTORY);
  if (!tryFlock(fd, shared ? LOCK.SH : LOCK.EX, dir)) {
    closeQuietly(fd);
    throw new NspawnError('EBUSY', `Directory tree ${dir} is currently busy (another container is using it)`);
  }
  return fd;
}

/** The tree's top-level symlinks into usr/ (bin -> usr/bin ...), for volatile=yes. */
export function usrSymlinks(dir: string): Array<{ name: string; target: string }> {
  const out: Array<{ name: string; target: string }> = [];
  for (const name of readdirSync(dir)) {
    try {
      if (!lstatSync(`${dir}/${name}`).isSymbolicLink()) continue;
      const target = readlinkSync(`${dir}/${name}`);
      if (/^\/?usr\//.test(target)) out.push({ name, target: target.replace(/^\//, '') });
    } catch {}
  }
  return out;
}

/** The device nodes a container gets, bound from the host. */
export const DEVICE_NODES = ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'net/tun'];

function detach(path: string, recursive: boolean, readOnly: boolean): number {
  const fd = openTree(AT.FDCWD, path, OPEN_TREE.CLONE | (recursive ? AT.RECURSIVE : 0));
  if (readOnly) mountSetattr(fd, '', AT.EMPTY_PATH | AT.RECURSIVE, { set: MOUNT_ATTR.RDONLY });
  return fd;
}

/**
 * A detached copy of the mount tree at `path` inside the tree, resolved in
 * its root: a /usr that is a symlink to / (or to a host path) names a
 * directory of the tree, never one of the host.
 */
function detachInTree(rootFd: number, path: string, recursive: boolean, readOnly: boolean): number {
  let at: number;
  try {
    at = openInRoot(rootFd, path, O.PATH | O.DIRECTORY);
  } catch (e) {
    throw new NspawnError('ENOENT', `${path} in the container tree is missing or not a directory`, {
      cause: e,
    });
  }
  try {
    const fd = openTree(at, '', OPEN_TREE.CLONE | AT.EMPTY_PATH | (recursive ? AT.RECURSIVE : 0));
    if (readOnly) mountSetattr(fd, '', AT.EMPTY_PATH | AT.RECURSIVE, { set: MOUNT_ATTR.RDONLY });
    return fd;
  } finally {
    closeQuietly(at);
  }
}

export interface HostObjects {
  tree: string;
  /** An O_PATH fd of the tree's root: paths inside the tree are resolved in it. */
  rootFd: number;
  volatile: Settings['volatile'];
  readOnly: boolean;
  consolePeer?: string;
  osRelease?: string;
  notifySocket?: string;
  resolvConf?: string;
  localtime?: string;
  bindSys: boolean;
}

/**
 * Opens every host object the container gets as a detached mount. The fds
 * are close-on-exec: the child inherits them until its execve. The caller
 * closes them with closeDetached() once the child runs (or fails).
 */
export function openDetachedMounts(h: HostObjects): DetachedMounts {
  const opened: number[] = [];
  const track = (fd: number) => {
    opened.push(fd);
    return fd;
  };
  try {
    const readOnlyRoot = h.readOnly || h.volatile === 'yes' || h.volatile === 'state';
    const m: DetachedMounts = {
      root: track(
        h.volatile === 'yes'
          ? detachInTree(h.rootFd, '/usr', true, readOnlyRoot)
          : detach(h.tree, true, readOnlyRoot),
      ),
      devices: {},
    };
    for (const name of DEVICE_NODES) {
      try {
        m.devices[name] = track(detach(`/dev/${name}`, false, false));
      } catch {
        // net/tun may be missing on the host; the rest must exist.
        if (name !== 'net/tun') throw new NspawnError('ENOENT', `Host device /dev/${name} is missing`);
      }
    }
    if (h.consolePeer) m.console = track(detach(h.consolePeer, false, false));
    if (h.osRelease) m.osRelease = track(detach(h.osRelease, false, true));
    if (h.notifySocket) m.notifySocket = track(detach(h.notifySocket, false, false));
    if (h.resolvConf) m.resolvConf = track(detach(h.resolvConf, false, true));
    if (h.localtime) m.localtime = track(detach(h.localtime, false, true));
    if (h.bindSys) m.sys = track(detach('/sys', true, true));
    return m;
  } catch (e) {
    closeQuietly(...opened);
    throw e;
  }
}

export function closeDetached(m: DetachedMounts): void {
  closeQuietly(
    m.root,
    ...Object.values(m.devices),
    m.console,
    m.osRelease,
    m.notifySocket,
    m.resolvConf,
    m.sys,
  );
}

/**
 * The parent's half of the custom mounts: each bind source opened as a
 * detached mount (read-only when asked), a work directory for each writable
 * overlay, and the kind (file or directory) of each inaccessible path as the
 * tree has it. `close()` releases the fds; `remove()` the work directories.
 */
export function prepareCustomMounts(settings: Settings, rootFd: number) {
  const custom: CustomMounts = { binds: [], tmpfs: [...settings.tmpfs], overlays: [], inaccessible: [] };
  const fds: number[] = [];
  // Every bind source, for idmapped mounts under a user namespace (`idmap`: one was asked for).
  const bindSources: Array<{ fd: number; source: string; idmap?: boolean }> = [];
  const workDirs: string[] = [];
  const close = () => closeQuietly(...fds.splice(0));
  const remove = () => {
    for (const d of workDirs.splice(0)) removeTree(d);
  };
  try {
    const binds = [...settings.binds];
    for (const o of settings.overlays) {
      // One read-only layer is just a read-only bind; the kernel wants two for an overlay.
      if (o.readOnly && o.lower.length === 1)
        binds.push({
          source: o.lower[0]!,
          destination: o.destination,
          readOnly: true,
          recursive: false,
        });
      else {
        for (const d of [...o.lower, ...(o.upper ? [o.upper] : [])])
          if (!statIfExists(d)?.isDirectory())
            throw new NspawnError('ENOENT', `Overlay directory ${d} doesn't exist`);
        let work: string | undefined;
        if (o.upper) {
          work = mkdtempSync(`${dirname(o.upper)}/.#${basename(o.upper)}.`);
          workDirs.push(work);
        }
        custom.overlays.push({ ...o, work });
      }
    }
    for (const b of binds) {
      const st = statIfExists(b.source);
      if (!st) throw new NspawnError('ENOENT', `Bind mount source ${b.source} doesn't exist`);
      const fd = openTree(AT.FDCWD, b.source, OPEN_TREE.CLONE | (b.recursive ? AT.RECURSIVE : 0));
      fds.push(fd);
      if (b.readOnly) mountSetattr(fd, '', AT.EMPTY_PATH | AT.RECURSIVE, { set: MOUNT_ATTR.RDONLY });
      bindSources.push({ fd, source: b.source, ...(b.idmap === undefined ? {} : { idmap: b.idmap }) });
      custom.binds.push({ fd, destination: b.destination, file: !st.isDirectory() });
    }
    for (const path of settings.inaccessible) {
      let fd: number;
      try {
        fd = openInRoot(rootFd, path, O.PATH | O.CLOEXEC);
      } catch (e) {
        throw new NspawnError('ENOENT', `Inaccessible path ${path} doesn't exist in the container`, {
          cause: e,
        });
      }
      try {
        custom.inaccessible.push({ path, file: !fstatSync(fd).isDirectory() });
      } finally {
        closeQuietly(fd);
      }
    }
    return { custom, binds: bindSources, close, remove };
  } catch (e) {
    close();
    remove();
    throw e;
  }
}

function statIfExists(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/**
 * The container's notify socket, `<runtimeDir>/<machine>.<random>.notify`,
 * held (held-path.ts) while the container runs; those of killed sd-nspawns
 * are removed here first. A socket of its own, not in a directory of the
 * container's: where /run is a disk file system, each rmdir costs a start
 * ~0.2 ms (the root is assembled on the runtime directory itself, see
 * ContainerPlan.staging).
 */
export function createNotifySocket(
  runtimeDir: string,
  machine: string,
): { notify: NotifySocket; remove: () => void } {
  mkdirSync(runtimeDir, { recursive: true, mode: 0o755 });
  removeStaleRuntimePaths(runtimeDir);
  const held = holdNewPath(runtimeDir, `${machine}.${randomSuffix()}.notify`, (p) => new NotifySocket(p));
  return {
    notify: held.made,
    remove: () => {
      held.made.close();
      held.release();
    },
  };
}

/**
 * Removes the notify sockets of sd-nspawns that are gone (and the staging
 * directories older versions made, which held only mount points of the
 * container's own namespace and the socket).
 */
export function removeStaleRuntimePaths(runtimeDir: string): string[] {
  return pruneDeadPaths(
    runtimeDir,
    (name) => !name.startsWith('.'),
    (path) => removeTree(path),
  );
}

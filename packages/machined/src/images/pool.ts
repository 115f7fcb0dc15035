import { dirname } from 'node:path';
import { assertImageName, HOST_IMAGE, isHiddenImage } from '@sd/basic';
import {
  AT,
  closeQuietly,
  ERRNO,
  enableQuota,
  FS_MAGIC,
  fchmodat,
  fstatfs,
  ioctlPtr,
  isBtrfsFd,
  O,
  openat,
  qgroupInfo,
  quotaEnabled,
  RENAME,
  removeTree,
  renameat2,
  SyscallError,
  setQgroupLimit,
  setSubvolumeReadOnly,
  statxFull,
  subvolumeId,
} from '@sd/sys';
import { type CloneMethod, cloneImage } from './clone.js';
import { discoverImages, findImage, requireImage, setImmutable, UINT64_MAX } from './discover.js';
import { ImageBusyError, ImageExistsError, ImageNotSupportedError, ImageReadOnlyError } from './errors.js';
import { imageHostname, imageMachineId, imageMachineInfo, imageOsRelease } from './metadata.js';
import { type ImagePoolPaths, imagePoolPaths } from './paths.js';
import { cloneAuxiliary, removeAuxiliary, renameAuxiliary } from './settings.js';
import type { ImageInfo, ImagePool as ImagePoolApi } from './types.js';

export interface ImagePoolOptions {
  /** The paths (search path, pool, settings dirs); systemd's defaults under `root` when not given. */
  paths?: ImagePoolPaths;
  /** Root for the default paths (a temporary directory in tests). */
  root?: string;
  /** Whether a machine by this name is running (remove/rename/clean then refuse with EBUSY). */
  isInUse?: (name: string) => boolean;
  /**
   * Runs a long method (remove, clone, quota limits) elsewhere — the
   * daemon's worker processes — once this pool has checked the call: the
   * daemon's loop must not wait for a multi-GB unlink or copy. The
   * receiver runs the same method of a pool without `offload`.
   */
  offload?: (method: OffloadedMethod, args: unknown[]) => Promise<unknown>;
  /** Clones that copy a tree do so with a second process (@sd/sys copyTree `parallel`): the worker's. */
  parallelCopies?: boolean;
}

export type OffloadedMethod = 'remove' | 'clone' | 'setLimit' | 'setPoolLimit';

const BLKROSET = 0x125d;
const { EEXIST } = ERRNO;

/**
 * The image pool: the images along the search path and what can be done
 * to them — list, get, remove, rename, clone, mark read-only, quota limits,
 * clean — plus the metadata the images carry. Every call validates names,
 * names the image in its errors, and acts through syscalls.
 */
export class ImagePool implements ImagePoolApi {
  readonly paths: ImagePoolPaths;
  readonly #isInUse: (name: string) => boolean;
  readonly #offload: ImagePoolOptions['offload'];
  readonly #parallel: boolean;

  constructor(options: ImagePoolOptions = {}) {
    this.paths = options.paths ?? imagePoolPaths(options.root ?? '/');
    this.#isInUse = options.isInUse ?? (() => false);
    this.#offload = options.offload;
    this.#parallel = options.parallelCopies ?? false;
  }

  get poolPath(): string {
    return this.paths.poolDir;
  }

  async list(): Promise<ImageInfo[]> {
    return discoverImages(this.paths);
  }

  /** The image called `name`, or undefined. Throws InvalidArgumentError for a bad name. */
  async get(name: string): Promise<ImageInfo | undefined> {
    assertImageName(name);
    return findImage(name, this.paths);
  }

  #mutable(name: string, what: string): ImageInfo {
    assertImageName(name);
    const img = requireImage(name, this.paths);
    if (name === HOST_IMAGE) throw new ImageReadOnlyError(name, `the host image cannot be ${what}`);
    const v = this.paths.vendorPrefix;
    if (v !== '' && (img.path === v || img.path.startsWith(`${v}/`)))
      throw new ImageReadOnlyError(name, `vendor images below ${v} cannot be ${what}`);
    return img;
  }

  #notBusy(name: string): void {
    if (this.#isInUse(name)) throw new ImageBusyError(name);
  }

  async remove(name: string): Promise<void> {
    const img = this.#mutable(name, 'removed');
    this.#notBusy(name);
    if (img.type === 'block')
      throw new ImageNotSupportedError(name, 'Removing block device images is not supported');
    if (this.#offload) {
      await this.#offload('remove', [name]);
      return;
    }
    removeTree(img.path, true);
    removeAuxiliary(img, this.paths);
  }

  async rename(name: string, newName: string): Promise<void> {
    assertImageName(newName, 'New image name');
    const img = this.#mutable(name, 'renamed');
    this.#notBusy(name);
    if (img.type === 'block')
      throw new ImageNotSupportedError(name, 'Renaming block device images is not supported');
    const existing = findImage(newName, this.paths);
    if (existing) throw new ImageExistsError(newName, existing.path);
    const newPath = `${dirname(img.path)}/${newName}${img.type === 'raw' ? '.raw' : ''}`;
    // The immutable flag forbids renaming; take it off and put it back.
    let wasImmutable = false;
    if (img.type === 'directory' || img.type === 'raw') {
      try {
        wasImmutable = setImmutable(img.path, false);
      } catch {}
    }
    try {
      renameat2(AT.FDCWD, img.path, AT.FDCWD, newPath, RENAME.NOREPLACE);
    } catch (e) {
      if (e instanceof SyscallError && e.errno === EEXIST) throw new ImageExistsError(newName, newPath);
      throw e;
    } finally {
      if (wasImmutable) {
        try {
          setImmutable(newPath, true);
        } catch {
          setImmutable(img.path, true);
        }
      }
    }
    renameAuxiliary(img, newName, this.paths);
  }

  /** Clones `name` into the pool as `newName`; returns how (snapshot, copy...). */
  async clone(name: string, newName: string, readOnly: boolean): Promise<void> {
    await this.cloneWithMethod(name, newName, readOnly);
  }

  async cloneWithMethod(name: string, newName: string, readOnly: boolean): Promise<CloneMethod> {
    assertImageName(name);
    assertImageName(newName, 'New image name');
    const img = requireImage(name, this.paths);
    if (name === HOST_IMAGE)
      throw new ImageNotSupportedError(name, 'Cloning the host image is not supported');
    const existing = findImage(newName, this.paths);
    if (existing) throw new ImageExistsError(newName, existing.path);
    if (this.#offload) return (await this.#offload('clone', [name, newName, readOnly])) as CloneMethod;
    const method = await cloneImage(img, newName, readOnly, this.paths.poolDir, this.#parallel);
    if (readOnly && method !== 'snapshot' && method !== 'subvolume+copy')
      await this.markReadOnly(newName, true);
    cloneAuxiliary(img, newName, this.paths);
    return method;
  }

  async markReadOnly(name: string, readOnly: boolean): Promise<void> {
    const img = this.#mutable(name, readOnly ? 'marked read-only' : 'made writable');
    switch (img.type) {
      case 'subvolume': {
        const fd = openat(AT.FDCWD, img.path, O.RDONLY | O.DIRECTORY);
        try {
          setSubvolumeReadOnly(fd, readOnly, img.path);
        } finally {
          closeQuietly(fd);
        }
        return;
      }
      case 'directory':
        // Not the mode of the top directory: that is the container's own "/".
        setImmutable(img.path, readOnly);
        return;
      case 'raw': {
        if (!readOnly) setImmutable(img.path, false);
        const st = statxFull(AT.FDCWD, img.path);
        fchmodat(AT.FDCWD, img.path, (st.mode & 0o7555) | (readOnly ? 0 : 0o200));
        if (readOnly) {
          try {
            setImmutable(img.path, true);
          } catch {}
        }
        return;
      }
      case 'block': {
        const fd = openat(AT.FDCWD, img.path, O.RDONLY | O.NONBLOCK);
        try {
          const b = Buffer.alloc(4);
          b.writeInt32LE(readOnly ? 1 : 0, 0);
          ioctlPtr(fd, BLKROSET, b, 'ioctl(BLKROSET)', img.path);
        } finally {
          closeQuietly(fd);
        }
      }
    }
  }

  /** Quota limit of a btrfs subvolume image; 2^64-1 removes it. Other image types: EOPNOTSUPP. */
  async setLimit(name: string, bytes: bigint): Promise<void> {
    const img = this.#mutable(name, 'limited');
    if (img.type !== 'subvolume')
      throw new ImageNotSupportedError(name, 'Quota is only supported on btrfs subvolume images');
    // Enabling quota starts a rescan of the whole file system.
    if (this.#offload) {
      await this.#offload('setLimit', [name, bytes]);
      return;
    }
    const fd = openat(AT.FDCWD, img.path, O.RDONLY | O.DIRECTORY);
    try {
      if (!quotaEnabled(fd, img.path)) enableQuota(fd, img.path);
      setQgroupLimit(fd, bytes >= UINT64_MAX ? undefined : bytes, img.path);
    } finally {
      closeQuietly(fd);
    }
  }

  #withPoolFd<T>(fn: (fd: number) => T): T | undefined {
    let fd: number;
    try {
      fd = openat(AT.FDCWD, this.paths.poolDir, O.RDONLY | O.DIRECTORY);
    } catch {
      return undefined;
    }
    try {
      return fn(fd);
    } finally {
      closeQuietly(fd);
    }
  }

  /** Limits the pool directory's subvolume (btrfs quota); EOPNOTSUPP elsewhere. */
  async setPoolLimit(bytes: bigint): Promise<void> {
    if (this.#offload) {
      await this.#offload('setPoolLimit', [bytes]);
      return;
    }
    const pool = this.paths.poolDir;
    const done = this.#withPoolFd((fd) => {
      if (!isBtrfsFd(fd)) return false;
      if (!quotaEnabled(fd, pool)) enableQuota(fd, pool);
      setQgroupLimit(fd, bytes >= UINT64_MAX ? undefined : bytes, pool);
      return true;
    });
    if (!done) throw new ImageNotSupportedError(pool, `Quota is only supported on btrfs (pool ${pool})`);
  }

  #poolQgroup() {
    return this.#withPoolFd((fd) =>
      fstatfs(fd).type === FS_MAGIC.BTRFS ? qgroupInfo(fd, subvolumeId(fd), this.paths.poolDir) : undefined,
    );
  }

  async poolUsage(): Promise<bigint> {
    return this.#poolQgroup()?.referenced ?? UINT64_MAX;
  }

  async poolLimit(): Promise<bigint> {
    return this.#poolQgroup()?.maxReferenced ?? UINT64_MAX;
  }

  /** Removes every writable image ('all') or the hidden ones; read-only and running ones stay. */
  async clean(mode: 'all' | 'hidden'): Promise<Array<{ name: string; usage: bigint }>> {
    if (mode !== 'all' && mode !== 'hidden')
      throw new ImageNotSupportedError(
        String(mode),
        `Unknown clean mode ${JSON.stringify(mode)} (want 'all' or 'hidden')`,
      );
    const removed: Array<{ name: string; usage: bigint }> = [];
    for (const img of discoverImages(this.paths)) {
      if (img.name === HOST_IMAGE || img.readOnly || img.type === 'block') continue;
      if (mode === 'hidden' && !isHiddenImage(img.name)) continue;
      if (this.#isInUse(img.name)) continue;
      const v = this.paths.vendorPrefix;
      if (v !== '' && img.path.startsWith(`${v}/`)) continue;
      await this.remove(img.name);
      removed.push({ name: img.name, usage: img.usage });
    }
    return removed;
  }

  async hostname(name: string): Promise<string> {
    return imageHostname(this.#get(name));
  }

  async machineId(name: string): Promise<Buffer> {
    return imageMachineId(this.#get(name));
  }

  async machineInfo(name: string): Promise<Record<string, string>> {
    return imageMachineInfo(this.#get(name));
  }

  async osRelease(name: string): Promise<Record<string, string>> {
    return imageOsRelease(this.#get(name));
  }

  #get(name: string): ImageInfo {
    assertImageName(name);
    return requireImage(name, this.paths);
  }
}

import { mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { ImageError, mountImage } from '@sd/gpt';
import { closeQuietly, LOCK, O, open, SdError, tryFlock, umountTree } from '@sd/sys';
import { NspawnError } from '../errors.js';
import type { Settings } from '../settings/settings.js';

/**
 * --image: dissect the disk image, attach it to a loop device and mount it
 * (root, /usr, /home, /srv, /var, /var/tmp) on a private directory, which the
 * container then runs on as it would with --directory. The directories live
 * under <runtimeDir>/images/, not in the staging directory: staging
 * directories are removed recursively (also those of killed runs), which
 * must never reach into a mounted image.
 */

export interface ContainerImage {
  /** Where the image's root is mounted. */
  dir: string;
  /** Unmounts, detaches the loop device, removes the directory. Safe to call twice. */
  release: () => void;
}

export function mountContainerImage(settings: Settings, runtimeDir: string, machine: string): ContainerImage {
  const image = settings.image!;
  if (settings.directory !== undefined) {
    throw new NspawnError('EINVAL', '--directory= and --image= may not be combined.');
  }
  const readOnly = settings.readOnly || settings.volatile !== 'no';
  let lockFd: number;
  try {
    lockFd = open(image, O.RDONLY);
  } catch (e) {
    throw new NspawnError('ENOENT', `Failed to open image ${image}: ${(e as Error).message}`, { cause: e });
  }
  // One writer per image, like the tree lock of --directory.
  if (!tryFlock(lockFd, readOnly ? LOCK.SH : LOCK.EX, image)) {
    closeQuietly(lockFd);
    throw new NspawnError('EBUSY', `Disk image ${image} is currently busy (another container is using it)`);
  }
  let dir: string | undefined;
  let dirLock: number | undefined;
  try {
    pruneStaleImageDirs(`${runtimeDir}/images`);
    dir = makeImageDir(runtimeDir, machine);
    // Held while the image is mounted: the next start can tell a killed run's mounts.
    dirLock = open(`${dir}.lock`, O.CREAT | O.RDWR, 0o600);
    tryFlock(dirLock, LOCK.EX, `${dir}.lock`);
    // A container does not boot through the ESP or XBOOTLDR: they are not mounted.
    const mounted = mountImage(image, dir, { readOnly, skip: ['esp', 'xbootldr'] });
    const where = dir;
    let done = false;
    return {
      dir,
      release: () => {
        if (done) return;
        done = true;
        try {
          mounted.release();
          rmdirSync(where);
          rmSync(`${where}.lock`, { force: true });
          removeIfEmpty(`${runtimeDir}/images`);
        } finally {
          closeQuietly(lockFd, dirLock);
        }
      },
    };
  } catch (e) {
    if (dir) {
      rmdirSync(dir);
      rmSync(`${dir}.lock`, { force: true });
      removeIfEmpty(`${runtimeDir}/images`);
    }
    closeQuietly(lockFd, dirLock);
    if (e instanceof ImageError)
      throw new NspawnError(e.code, `Failed to dissect image: ${e.message}`, { cause: e });
    if (e instanceof SdError)
      throw new NspawnError(e.code, `Failed to mount image ${image}: ${e.message}`, { cause: e });
    throw e;
  }
}

function makeImageDir(runtimeDir: string, machine: string): string {
  // Another sd-nspawn may remove the (empty) images directory between the two calls: try again.
  for (let attempt = 0; ; attempt++) {
    mkdirSync(`${runtimeDir}/images`, { recursive: true, mode: 0o755 });
    try {
      return mkdtempSync(`${runtimeDir}/images/${machine}.`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw e;
    }
  }
}

/** The images directory goes when its last image does, as staging directories do. */
function removeIfEmpty(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // Not empty (another container's image) or gone already.
  }
}

/**
 * Unmounts and removes the image directories of sd-nspawns that were killed
 * while their image was mounted (nobody holds their lock any more). Their
 * loop devices, attached with autoclear, go with the last unmount.
 */
export function pruneStaleImageDirs(images: string): string[] {
  const pruned: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(images);
  } catch {
    return pruned;
  }
  for (const name of entries) {
    if (!name.endsWith('.lock')) continue;
    const lock = `${images}/${name}`;
    let fd: number;
    try {
      fd = open(lock, O.RDWR);
    } catch {
      continue;
    }
    try {
      if (!tryFlock(fd, LOCK.EX, lock)) continue;
      const dir = lock.slice(0, -'.lock'.length);
      umountTree(dir, { detach: true });
      try {
        rmdirSync(dir);
      } catch {}
      rmSync(lock, { force: true });
      pruned.push(dir);
    } finally {
      closeQuietly(fd);
    }
  }
  return pruned;
}

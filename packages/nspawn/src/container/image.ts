import { chmodSync, mkdirSync, rmdirSync } from 'node:fs';
import { ImageError, mountImage } from '@sd/gpt';
import { closeQuietly, LOCK, O, open, SdError, tryFlock, umountTree } from '@sd/sys';
import { NspawnError } from '../errors.js';
import type { Settings } from '../settings/settings.js';
import { type HeldPath, holdNewPath, pruneDeadPaths, randomSuffix } from './held-path.js';

/**
 * --image: dissect the disk image, attach it to a loop device and mount it
 * (root, /usr, /home, /srv, /var, /var/tmp) on a private directory, which the
 * container then runs on as it would with --directory. The directories live
 * under <runtimeDir>/images/, not right under the runtime directory: what
 * killed runs left there is removed recursively, which must never reach
 * into a mounted image.
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
  const images = `${runtimeDir}/images`;
  let held: HeldPath | undefined;
  try {
    // Root's only: the mounted images below must not be reachable by host
    // users (a setuid binary or a file of the image they could not read otherwise).
    mkdirSync(images, { recursive: true, mode: 0o700 });
    chmodSync(images, 0o700);
    pruneStaleImageDirs(images);
    // Held while the image is mounted: the next start can tell a killed run's mounts.
    held = holdNewPath(images, `${machine}.${randomSuffix()}`, (p) => mkdirSync(p, { mode: 0o755 }));
    const dir = held.path;
    const hold = held;
    // A container does not boot through the ESP or XBOOTLDR: they are not mounted.
    const mounted = mountImage(image, dir, { readOnly, skip: ['esp', 'xbootldr'] });
    let done = false;
    return {
      dir,
      release: () => {
        if (done) return;
        done = true;
        try {
          mounted.release();
          rmdirSync(dir);
          hold.release();
        } finally {
          closeQuietly(lockFd);
        }
      },
    };
  } catch (e) {
    if (held) {
      rmdirSync(held.path);
      held.release();
    }
    closeQuietly(lockFd);
    if (e instanceof ImageError)
      throw new NspawnError(e.code, `Failed to dissect image: ${e.message}`, { cause: e });
    if (e instanceof SdError)
      throw new NspawnError(e.code, `Failed to mount image ${image}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * Unmounts and removes the image directories of sd-nspawns that were killed
 * while their image was mounted. Their loop devices, attached with
 * autoclear, go with the last unmount.
 */
export function pruneStaleImageDirs(images: string): string[] {
  return pruneDeadPaths(
    images,
    () => true,
    (dir) => {
      umountTree(dir, { detach: true });
      rmdirSync(dir);
    },
  );
}

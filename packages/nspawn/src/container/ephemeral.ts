import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  closeQuietly,
  copyTree,
  destroySubvolume,
  getRandom,
  isSubvolume,
  openDir,
  RENAME,
  removeTree,
  renameat2,
  SyscallError,
  snapshot,
} from '@sd/sys';
import { NspawnError } from '../errors.js';
import { holdNewPath, pruneDeadPaths, randomSuffix } from './held-path.js';

/**
 * -x/--ephemeral and --template: a throwaway or a first-run copy of a tree,
 * made the cheapest way the file system allows — a btrfs snapshot of a
 * subvolume (constant time, whatever the size), else (ephemeral only) an
 * overlay with a tmpfs on top, never a slow full copy. A template may be
 * copied (reflinks where the file system has them), once.
 */

const PREFIX = '.#machine.';

export type EphemeralRoot = { kind: 'snapshot'; directory: string; remove: () => void } | { kind: 'overlay' };

function destroy(path: string): void {
  const dirFd = openDir(dirname(path));
  try {
    destroySubvolume(dirFd, basename(path));
  } catch {
    // Not a subvolume (a copy): remove it file by file.
    removeTree(path);
  } finally {
    closeQuietly(dirFd);
  }
}

/** Removes the ephemeral snapshots next to `tree` left by sd-nspawns that were killed. */
export function removeStaleEphemeral(tree: string): string[] {
  return pruneDeadPaths(dirname(tree), (name) => name.startsWith(PREFIX), destroy);
}

/** A throwaway root for `tree`: a snapshot next to it when it is a subvolume, else an overlay. */
export function prepareEphemeral(tree: string): EphemeralRoot {
  if (!isSubvolume(tree)) return { kind: 'overlay' };
  removeStaleEphemeral(tree);
  const srcFd = openDir(tree);
  const dstFd = openDir(dirname(tree));
  try {
    const held = holdNewPath(dirname(tree), `${PREFIX}${randomSuffix()}`, (path) => {
      try {
        snapshot(srcFd, dstFd, basename(path));
      } catch (e) {
        throw new NspawnError('EIO', `Failed to snapshot ${tree} for --ephemeral`, { cause: e });
      }
    });
    return {
      kind: 'snapshot',
      directory: held.path,
      remove: () => {
        destroy(held.path);
        held.release();
      },
    };
  } finally {
    closeQuietly(srcFd, dstFd);
  }
}

/**
 * --template: makes `directory` from `template` when it does not exist yet —
 * a snapshot when the template is a subvolume, else a copy (reflinks where
 * possible) under a temporary name, renamed into place when complete.
 */
export async function createFromTemplate(
  directory: string,
  template: string,
): Promise<'existed' | 'snapshot' | 'copy'> {
  if (existsSync(directory)) return 'existed';
  if (!existsSync(template)) throw new NspawnError('ENOENT', `Template ${template} doesn't exist`);
  const parent = dirname(directory);
  const tmp = `.#${basename(directory)}.${getRandom(6).toString('hex')}`;
  const parentFd = openDir(parent);
  try {
    if (isSubvolume(template)) {
      const srcFd = openDir(template);
      try {
        snapshot(srcFd, parentFd, tmp);
      } finally {
        closeQuietly(srcFd);
      }
    } else {
      try {
        await copyTree(template, join(parent, tmp));
      } catch (e) {
        removeTree(join(parent, tmp));
        throw new NspawnError('EIO', `Failed to copy template ${template} to ${directory}`, { cause: e });
      }
    }
    try {
      renameat2(parentFd, tmp, parentFd, basename(directory), RENAME.NOREPLACE);
    } catch (e) {
      // Another start made it meanwhile: use theirs.
      destroy(join(parent, tmp));
      if (e instanceof SyscallError && e.code === 'EEXIST') return 'existed';
      throw e;
    }
    return isSubvolume(directory) ? 'snapshot' : 'copy';
  } finally {
    closeQuietly(parentFd);
  }
}

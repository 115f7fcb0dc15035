import { join } from 'node:path';
import { MACHINE_IMAGE_SEARCH_PATH, MACHINE_POOL_DIR, NSPAWN_SETTINGS_DIRS, under } from '@sd/basic';
import type { MachinedPaths } from '../paths.js';

/**
 * The paths the image pool uses, all from one place so that tests can point
 * them at a temporary root: the search path (first match wins), the pool
 * where new images go, the directories with `.nspawn` settings files that
 * travel with an image, and the root of the `.host` image.
 */
export interface ImagePoolPaths {
  searchPath: string[];
  poolDir: string;
  /** /etc/systemd/nspawn and /run/systemd/nspawn; the image's own directory is searched too. */
  settingsDirs: string[];
  /** The `.host` image: the host's root directory. */
  hostRoot: string;
  /** Images below this are vendor images and read-only (/usr). */
  vendorPrefix: string;
}

export function imagePoolPaths(root = '/'): ImagePoolPaths {
  const at = (p: string) => join(root, p);
  return {
    searchPath: under(root, MACHINE_IMAGE_SEARCH_PATH),
    poolDir: at(MACHINE_POOL_DIR),
    settingsDirs: under(root, NSPAWN_SETTINGS_DIRS),
    hostRoot: root,
    vendorPrefix: at('/usr'),
  };
}

/** The pool paths of a daemon's MachinedPaths (settings dirs and host root from `root`). */
export function imagePoolPathsFrom(paths: MachinedPaths, root = '/'): ImagePoolPaths {
  return { ...imagePoolPaths(root), searchPath: paths.imageSearchPath, poolDir: paths.poolDir };
}

import { lstatSync, type Stats, statSync } from 'node:fs';
import { join } from 'node:path';
import { MACHINE_IMAGE_SEARCH_PATH } from '@sd/basic';
import { NspawnError } from '../errors.js';
import type { Settings } from '../settings/settings.js';

/**
 * What to run when neither -D nor -i is given, as systemd-nspawn decides
 * it: with -M NAME, the image NAME in the machine image search path (a
 * directory or subvolume NAME, else a file NAME.raw, directory by
 * directory, first match wins); with neither, the current directory.
 */
export function locateImage(
  settings: Settings,
  searchPath: readonly string[] = MACHINE_IMAGE_SEARCH_PATH,
  cwd = process.cwd(),
): Settings {
  if (settings.directory !== undefined || settings.image !== undefined) return settings;
  const name = settings.machine;
  if (name === undefined) return { ...settings, directory: cwd };
  for (const dir of searchPath) {
    // A link in the search path is how images are often placed there; it is followed, as systemd does.
    const tree = statOrUndefined(join(dir, name));
    if (tree?.isDirectory()) return { ...settings, directory: join(dir, name) };
    const raw = statOrUndefined(join(dir, `${name}.raw`));
    if (raw?.isFile() || raw?.isBlockDevice()) return { ...settings, image: join(dir, `${name}.raw`) };
  }
  throw new NspawnError('ENOENT', `No image for machine '${name}' in ${searchPath.join(', ')}`);
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    lstatSync(path);
    return statSync(path);
  } catch {
    return undefined;
  }
}

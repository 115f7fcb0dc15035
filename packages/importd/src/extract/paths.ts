import { UnsafeEntryError } from '../errors.js';

/**
 * The components of an archive path, relative to the target: leading `/`
 * and `.` components are dropped (tar strips them too), `..` anywhere is
 * refused outright — resolution inside the root would contain it anyway,
 * but an archive that needs it is not a tree we want.
 */
export function entryComponents(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new UnsafeEntryError(path, 'it contains a ".." component');
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short strings need no byte count (a call into C++ each).
  for (const p of parts)
    if (p.length > 85 && Buffer.byteLength(p) > 255)
      throw new UnsafeEntryError(path, 'a component is longer than 255 bytes');
  if (path.length > 1365 && Buffer.byteLength(path) > 4095)
    throw new UnsafeEntryError(path.slice(0, 64), 'the path is longer than PATH_MAX');
  return parts;
}

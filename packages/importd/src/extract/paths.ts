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

/**
 * entryComponents(path).join('/'), without the arrays for the common
 * shape: GNU tar's `./usr/bin/ls` (leading `/` and `./` dropped, one
 * trailing `/` for directories) with single slashes between components
 * of 1–85 code units, none `.` or `..`. Anything else goes the general
 * way (and is refused there when it must be).
 */
export function entryPath(path: string): string {
  const n = path.length;
  let start = 0;
  for (;;) {
    const c = path.charCodeAt(start);
    if (c === 0x2f) start++;
    else if (c === 0x2e && path.charCodeAt(start + 1) === 0x2f) start += 2;
    else break;
  }
  let end = n;
  if (end > start && path.charCodeAt(end - 1) === 0x2f) end--;
  if (n > 1365) return entryComponents(path).join('/');
  let comp = start;
  for (let i = start; i <= end; i++) {
    if (i < end && path.charCodeAt(i) !== 0x2f) continue;
    const len = i - comp;
    if (
      len === 0 ||
      len > 85 ||
      (path.charCodeAt(comp) === 0x2e && (len === 1 || (len === 2 && path.charCodeAt(comp + 1) === 0x2e)))
    )
      return entryComponents(path).join('/');
    comp = i + 1;
  }
  return start === 0 && end === n ? path : path.slice(start, end);
}

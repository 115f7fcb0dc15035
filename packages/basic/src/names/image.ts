import { InvalidArgumentError } from '@sd/sys';

/**
 * Image names as systemd accepts them (image_name_is_valid): a valid file
 * name (not empty, not `.`/`..`, no `/`, at most 255 bytes), no control
 * characters, valid UTF-8, and not starting with `.#` (temporary files).
 * Names starting with `.` are hidden images.
 */
export function imageNameIsValid(name: unknown): name is string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..') return false;
  if (name.includes('/') || Buffer.byteLength(name, 'utf8') > 255) return false;
  if (/[\u0000-\u001f\u007f]/.test(name)) return false;
  // Lone surrogates are not UTF-8: they do not survive the round trip.
  if (Buffer.from(name, 'utf8').toString('utf8') !== name) return false;
  return !name.startsWith('.#');
}

/** Throws InvalidArgumentError naming the input unless it is a valid image name. */
export function assertImageName(name: unknown, what = 'Image name'): asserts name is string {
  if (!imageNameIsValid(name)) throw new InvalidArgumentError(`${what} ${JSON.stringify(name)} is invalid`);
}

/** An image's name from its file or directory name: a raw image's without its `.raw`. */
export const withoutRawSuffix = (entry: string): string =>
  entry.endsWith('.raw') ? entry.slice(0, -'.raw'.length) : entry;

/** Hidden images start with a dot; `machinectl list-images` shows them only with --all. */
export const isHiddenImage = (name: string): boolean => name.startsWith('.');

/** The host's own root is the image `.host`. */
export const HOST_IMAGE = '.host';

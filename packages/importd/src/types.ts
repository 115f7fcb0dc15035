import { InvalidArgumentError } from '@sd/sys';

/**
 * The names importd puts on the bus and takes from it: transfer types (the
 * `Type` property of a transfer), image types (machined's pool), how
 * downloads are verified, and export compression formats. Strings are
 * systemd's, so that its clients understand ours.
 */

export const TRANSFER_TYPES = [
  'import-tar',
  'import-raw',
  'import-fs',
  'export-tar',
  'export-raw',
  'pull-tar',
  'pull-raw',
] as const;
export type TransferType = (typeof TRANSFER_TYPES)[number];

export const IMAGE_TYPES = ['directory', 'subvolume', 'raw', 'block'] as const;
export type ImageType = (typeof IMAGE_TYPES)[number];

export const IMPORT_VERIFY = ['no', 'checksum', 'signature'] as const;
export type ImportVerify = (typeof IMPORT_VERIFY)[number];

/** Compression of exported files; "uncompressed" is how systemd names none. */
export const EXPORT_FORMATS = ['uncompressed', 'xz', 'gzip', 'bzip2', 'zstd'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** The result string of the TransferRemoved signal. */
export const TRANSFER_RESULTS = ['done', 'canceled', 'failed'] as const;
export type TransferResult = (typeof TRANSFER_RESULTS)[number];

function oneOf<T extends string>(what: string, values: readonly T[], text: string): T {
  if ((values as readonly string[]).includes(text)) return text as T;
  throw new InvalidArgumentError(
    `Invalid ${what}: ${JSON.stringify(text)} (expected one of: ${values.join(', ')})`,
  );
}

export function isTransferType(text: string): text is TransferType {
  return (TRANSFER_TYPES as readonly string[]).includes(text);
}

export function parseTransferType(text: string): TransferType {
  return oneOf('transfer type', TRANSFER_TYPES, text);
}

export function parseImageType(text: string): ImageType {
  return oneOf('image type', IMAGE_TYPES, text);
}

/**
 * A --verify= value or the verify argument of PullTar/PullRaw. The empty
 * string means the default, like systemd's tools: signature.
 */
export function parseVerify(text: string): ImportVerify {
  if (text === '') return 'signature';
  return oneOf('verification mode', IMPORT_VERIFY, text);
}

/**
 * The format argument of ExportTar/ExportRaw. Empty means: from the file
 * name's suffix when there is one, otherwise uncompressed.
 */
export function parseExportFormat(text: string, fileName?: string): ExportFormat {
  if (text !== '') return oneOf('export format', EXPORT_FORMATS, text);
  if (fileName === undefined) return 'uncompressed';
  if (/\.xz$/.test(fileName)) return 'xz';
  if (/\.(gz|tgz)$/.test(fileName)) return 'gzip';
  if (/\.bz2$/.test(fileName)) return 'bzip2';
  if (/\.zst$/.test(fileName)) return 'zstd';
  return 'uncompressed';
}

export const IMPORT1_PATH = '/org/freedesktop/import1';

/** The object path of a transfer: /org/freedesktop/import1/transfer/_<id>. */
export function transferObjectPath(id: number): string {
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff)
    throw new InvalidArgumentError(`Invalid transfer id: ${id}`);
  return `${IMPORT1_PATH}/transfer/_${id}`;
}

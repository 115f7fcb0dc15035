import { closeSync, constants, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { assertImageName, ImageNotFoundError, ImageNotSupportedError, type ImagePool } from '@sd/machined';
import { AT, closeQuietly, copyTree, O, openat, openRoot } from '@sd/sys';
import { autoDecompress, type Compression, compress } from './compress/index.js';
import { CanceledError } from './errors.js';
import { tarTree } from './export/tree.js';
import { directData } from './extract/direct.js';
import { type DevicePolicy, Extractor } from './extract/extract.js';
import { abortError, counted, directOf, fileSource, reuseBuffers, writeSparse } from './io.js';
import {
  checkFree,
  commitTempImage,
  createTempImage,
  discardTempImage,
  type TempImage,
} from './pool/target.js';
import { convertQcow2, isQcow2 } from './qcow2/qcow2.js';
import { TarReader, type TarReaderOptions } from './tar/reader.js';

/**
 * The transfers as library calls: import a tar or raw stream (any of the
 * compressions, found by magic bytes) or a directory into the pool, export
 * an image as a stream. Each import builds a hidden temporary image and
 * renames it into place at the end; failure or cancel removes it.
 */

export interface ImportOptions {
  pool: ImagePool;
  /** Replace an existing image of that name. */
  force?: boolean;
  readOnly?: boolean;
  signal?: AbortSignal;
  /** Bytes of (compressed) input read so far. */
  onProgress?: (bytes: number) => void;
  log?: (message: string) => void;
  devices?: DevicePolicy;
  uidShift?: number;
  /**
   * Runs after all data is in, before the rename, with the temporary
   * image's path: a throw (a failed verification) discards the image.
   */
  beforeCommit?: (tempPath: string) => Promise<void>;
}

export interface ImportResult {
  name: string;
  path: string;
  compression: Compression;
  /** Bytes of input read. */
  bytes: number;
}

function cancelCheck(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortError(signal);
}

async function withTemp<T>(
  opts: ImportOptions,
  name: string,
  kind: 'tree' | 'raw',
  body: (t: TempImage) => Promise<T>,
): Promise<{ value: T; path: string }> {
  assertImageName(name);
  await checkFree(opts.pool, name, opts.force ?? false);
  const t = createTempImage(opts.pool.poolPath, name, kind);
  try {
    const value = await body(t);
    cancelCheck(opts.signal);
    await opts.beforeCommit?.(t.path);
    cancelCheck(opts.signal);
    const path = await commitTempImage(opts.pool, t, opts);
    return { value, path };
  } catch (e) {
    discardTempImage(t);
    if (e instanceof Error && e.name === 'AbortError') throw new CanceledError(undefined, { cause: e });
    throw e;
  }
}

/** Imports a tar archive (plain, xz, gzip, bzip2 or zstd) as the image `name`. */
export async function importTar(
  source: AsyncIterable<Buffer>,
  name: string,
  opts: ImportOptions,
): Promise<ImportResult> {
  let bytes = 0;
  let compression: Compression = 'uncompressed';
  const { path } = await withTemp(opts, name, 'tree', async (t) => {
    const rootFd = openRoot(t.path);
    const extractor = new Extractor(rootFd, {
      devices: opts.devices,
      uidShift: opts.uidShift,
      log: opts.log,
    });
    try {
      let direct: TarReaderOptions['direct'];
      let skip: TarReaderOptions['skip'];
      const reader = new TarReader(extractor, {
        direct: (o, n) => direct?.(o, n) ?? false,
        skip: (n) => skip?.(n),
      });
      const onBytes = (n: number) => {
        bytes += n;
        opts.onProgress?.(bytes);
      };
      const input = counted(source, onBytes, opts.signal);
      const d = await autoDecompress(input, { reuseOutput: true });
      compression = d.format;
      // The reader and the native decoders are done with a chunk when they ask for the next; zlib's stream is not.
      if (d.format !== 'gzip') reuseBuffers(source);
      // A plain tar in a regular file: big files' data goes from the archive into the file inside the kernel.
      const src = d.format === 'uncompressed' ? directOf(source) : undefined;
      if (src) {
        src.narrow();
        direct = directData(extractor, src);
        // Bytes left out of the chunks are input read all the same.
        skip = (n) => {
          src.skip(n);
          onBytes(n);
        };
      }
      for await (const chunk of d.stream) {
        cancelCheck(opts.signal);
        reader.push(chunk);
        if (reader.ended) break;
      }
      reader.finish();
      extractor.finish();
    } finally {
      extractor.close();
      closeQuietly(rootFd);
    }
  });
  return { name, path, compression, bytes };
}

/** Imports a raw disk image (any compression), written sparse, as `name.raw`. */
export async function importRaw(
  source: AsyncIterable<Buffer>,
  name: string,
  opts: ImportOptions,
): Promise<ImportResult> {
  let bytes = 0;
  let compression: Compression = 'uncompressed';
  const { path } = await withTemp(opts, name, 'raw', async (t) => {
    const fd = openat(AT.FDCWD, t.path, O.WRONLY | O.NOFOLLOW);
    try {
      const input = counted(
        source,
        (n) => {
          bytes += n;
          opts.onProgress?.(bytes);
        },
        opts.signal,
      );
      const d = await autoDecompress(input, { reuseOutput: true });
      compression = d.format;
      if (d.format !== 'gzip') reuseBuffers(source);
      await writeSparse(fd, d.stream, opts.signal);
    } finally {
      closeQuietly(fd);
    }
    cancelCheck(opts.signal);
    convertIfQcow2(t.path, opts.log);
  });
  return { name, path, compression, bytes };
}

/**
 * A qcow2 image is converted to raw, as systemd does: it needs random
 * access, so the download lands first, then its guest view is written to a
 * second hidden file (same `.#import-<pid>-` prefix, so a crash leaves
 * nothing sd-importd will not remove) that replaces it.
 */
function convertIfQcow2(path: string, log?: (m: string) => void): void {
  const inFd = openSync(path, 'r');
  const out = `${path}~raw`;
  try {
    const head = Buffer.alloc(4);
    if (readSync(inFd, head, 0, 4, 0) < 4 || !isQcow2(head)) return;
    log?.('The image is qcow2: converting it to raw.');
    const outFd = openSync(
      out,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o644,
    );
    try {
      convertQcow2(inFd, outFd);
    } finally {
      closeSync(outFd);
    }
    renameSync(out, path);
  } catch (e) {
    rmSync(out, { force: true });
    throw e;
  } finally {
    closeSync(inFd);
  }
}

/** Copies a directory tree into the pool as `name` (reflinks where the file system shares extents). */
export async function importFs(sourceDir: string, name: string, opts: ImportOptions): Promise<ImportResult> {
  const { path } = await withTemp(opts, name, 'tree', async (t) => {
    cancelCheck(opts.signal);
    const stats = await copyTree(sourceDir, t.path, { into: true });
    opts.onProgress?.(Number(stats.bytes));
  });
  return { name, path, compression: 'uncompressed', bytes: 0 };
}

export interface ExportOptions {
  pool: ImagePool;
  format?: Compression;
  signal?: AbortSignal;
  onProgress?: (bytes: number) => void;
}

/** The image `name` (a directory or subvolume) as a tar stream in `format`. */
export async function exportTar(name: string, opts: ExportOptions): Promise<AsyncIterable<Buffer>> {
  assertImageName(name);
  const img = await opts.pool.get(name);
  if (!img) throw new ImageNotFoundError(name);
  if (img.type !== 'directory' && img.type !== 'subvolume')
    throw new ImageNotSupportedError(
      name,
      `Image "${name}" is a ${img.type} image; export-tar needs a directory`,
    );
  let bytes = 0;
  const tar = counted(
    tarTree(img.path, opts.signal),
    (n) => {
      bytes += n;
      opts.onProgress?.(bytes);
    },
    opts.signal,
  );
  return compress(opts.format ?? 'uncompressed', tar);
}

/** The raw image `name` as a stream in `format`. */
export async function exportRaw(name: string, opts: ExportOptions): Promise<AsyncIterable<Buffer>> {
  assertImageName(name);
  const img = await opts.pool.get(name);
  if (!img) throw new ImageNotFoundError(name);
  if (img.type !== 'raw')
    throw new ImageNotSupportedError(
      name,
      `Image "${name}" is a ${img.type} image; export-raw needs a raw image`,
    );
  let bytes = 0;
  const data = counted(
    fileSource(img.path),
    (n) => {
      bytes += n;
      opts.onProgress?.(bytes);
    },
    opts.signal,
  );
  return compress(opts.format ?? 'uncompressed', data);
}

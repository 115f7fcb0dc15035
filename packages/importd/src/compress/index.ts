import type { ExportFormat } from '../types.js';
import { bzip2Decoder, bzip2Encoder } from './bzip2.js';
import { bzip2DecodeParallel } from './bzip2-parallel.js';
import { transformPipelined, transformWith } from './codec.js';
import { gunzip, gzip } from './gzip.js';
import { threads } from './native.js';
import { xzDecoder, xzEncoder } from './xz.js';
import { zstdDecoder, zstdEncoder } from './zstd.js';

export type Compression = ExportFormat;

/** The compression of a stream from its first bytes (systemd's import-compress.c rules). */
export function detectCompression(head: Buffer): Compression | undefined {
  const starts = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (starts(0x1f, 0x8b)) return 'gzip';
  if (starts(0x42, 0x5a, 0x68)) return 'bzip2';
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (head.length < 6) return undefined;
  return 'uncompressed';
}

/** Bytes needed by detectCompression() to decide. */
export const DETECT_BYTES = 6;

export interface DecompressOptions {
  /** The consumer is done with each output buffer when it asks for the next: buffers may be reused. */
  reuseOutput?: boolean;
}

export function decompress(
  format: Compression,
  source: AsyncIterable<Buffer>,
  options: DecompressOptions = {},
): AsyncIterable<Buffer> {
  const reuse = options.reuseOutput ?? false;
  switch (format) {
    case 'uncompressed':
      return source;
    case 'xz':
      return transformPipelined(xzDecoder(), source, true, reuse);
    case 'gzip':
      return gunzip(source);
    case 'bzip2':
      // Block-parallel decoding costs some CPU (finding blocks, re-aligning them): only worth it with a second CPU.
      return threads() > 1
        ? bzip2DecodeParallel(source, { reuse })
        : transformPipelined(bzip2Decoder(), source, true, reuse);
    case 'zstd':
      return transformPipelined(zstdDecoder(), source, true, reuse);
  }
}

export function compress(format: Compression, source: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  switch (format) {
    case 'uncompressed':
      return source;
    case 'xz':
      return transformWith(xzEncoder(), source, false);
    case 'gzip':
      return gzip(source);
    case 'bzip2':
      return transformWith(bzip2Encoder(), source, false);
    case 'zstd':
      return transformWith(zstdEncoder(), source, false);
  }
}

/**
 * Peeks at the first bytes of `source`, picks the decompressor by magic
 * bytes, and returns the decompressed stream (with the peeked bytes put back).
 */
export async function autoDecompress(
  source: AsyncIterable<Buffer>,
  options: DecompressOptions = {},
): Promise<{ format: Compression; stream: AsyncIterable<Buffer> }> {
  const it = source[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let have = 0;
  let done = false;
  while (have < DETECT_BYTES) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    head.push(r.value);
    have += r.value.length;
  }
  const first = Buffer.concat(head);
  const format = detectCompression(first) ?? 'uncompressed';
  async function* rest(): AsyncGenerator<Buffer> {
    if (first.length > 0) yield first;
    if (done) return;
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    } finally {
      await it.return?.();
    }
  }
  return { format, stream: decompress(format, rest(), options) };
}

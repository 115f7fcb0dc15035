import { Readable } from 'node:stream';
import { constants, createGunzip, createGzip } from 'node:zlib';
import { DecompressError } from '../errors.js';

/**
 * gzip through Node's own zlib (Chromium's, with SIMD inflate: 221 MB/s here
 * against 123 MB/s for gzip(1)). A 256 KiB chunk instead of the 16 KiB
 * default made it 35 % faster; zlib runs on the thread pool, overlapping
 * with the synchronous tar writer.
 */
const CHUNK = 256 * 1024;

async function* through(
  source: AsyncIterable<Buffer>,
  stream: NodeJS.ReadWriteStream,
): AsyncGenerator<Buffer> {
  const input = Readable.from(source, { objectMode: false });
  input.on('error', (e) => (stream as unknown as Readable).destroy(e));
  input.pipe(stream as unknown as NodeJS.WritableStream);
  try {
    for await (const chunk of stream as unknown as AsyncIterable<Buffer>) yield chunk;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === 'string' && err.code.startsWith('Z_'))
      throw new DecompressError(`gzip: ${err.message}`, { cause: e });
    throw e;
  } finally {
    input.destroy();
    (stream as unknown as Readable).destroy();
  }
}

export function gunzip(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  // finishFlush: a truncated stream must be an error, not a short file.
  return through(source, createGunzip({ chunkSize: CHUNK, finishFlush: constants.Z_FINISH }));
}

export function gzip(source: AsyncIterable<Buffer>, level = 6): AsyncGenerator<Buffer> {
  return through(source, createGzip({ chunkSize: CHUNK, level }));
}

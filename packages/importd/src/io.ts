import { closeSync, createReadStream, fstatSync, openSync, readSync, write, writeSync } from 'node:fs';
import { ftruncate, lseek, SEEK, SyscallError, sendfileAt } from '@sd/sys';
import { CanceledError } from './errors.js';

/**
 * Byte streams in and out of a transfer: reads from an fd (a file or a pipe
 * a bus client passed), with 1 MiB reads; a counting wrapper that reports
 * progress and honours cancel between chunks; and a writer that keeps the
 * output sparse (zero blocks become holes).
 */

export const CHUNK = 1024 * 1024;
/**
 * Reads of a plain tar whose big files sendfile moves: smaller, because
 * whatever of those a read already brought in was copied for nothing
 * (256 KiB measured best, by a little). Compressed input keeps 1 MiB.
 */
const DIRECT_CHUNK = 256 * 1024;

/** fs.writeSync with the failure as a SyscallError (ENOSPC, EIO...), like every other syscall here. */
export function writeSyncErrno(
  fd: number,
  buf: Buffer,
  off: number,
  len: number,
  pos: number | null,
  path?: string,
): number {
  try {
    return writeSync(fd, buf, off, len, pos);
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).errno;
    if (typeof errno === 'number') throw new SyscallError('write', Math.abs(errno), path, { cause: e });
    throw e;
  }
}

/**
 * Chunks of an fd from its current position. A regular file is read
 * synchronously (1 MiB from the page cache takes well under a millisecond;
 * a thread-pool round trip per chunk left the import idle a quarter of the
 * time); pipes and sockets through Node's stream, which never blocks.
 */
export function fdSource(fd: number): AsyncIterable<Buffer> {
  if (fstatSync(fd).isFile()) return syncChunks(fd, false);
  return createReadStream('', { fd, autoClose: false, highWaterMark: CHUNK }) as AsyncIterable<Buffer>;
}

export function fileSource(path: string): ReusableSource {
  const fd = openSync(path, 'r');
  return syncChunks(fd, true);
}

/**
 * A source that can hand out the same buffer again once the consumer asks
 * for the next chunk. A fresh 1 MiB buffer per chunk cost a page fault per
 * 4 KiB on the first read into it and a garbage collection every few
 * dozen: about a third of a plain .tar import. Only a consumer that is
 * done with a chunk when it asks for the next may turn this on (not gzip:
 * Node's zlib stream keeps chunks queued).
 */
export interface ReusableSource extends AsyncIterable<Buffer> {
  reuseBuffers(): void;
  /** The source is a regular file: its bytes can be moved inside the kernel. */
  readonly direct: DirectSource;
}

/**
 * Kernel-side access to a file source, for a consumer that reads the
 * stream as it is (no decompression). Offsets count from the source's
 * first byte.
 */
export interface DirectSource {
  /** The stream is read as it is, with big files moved by sendfile: later reads are smaller. */
  narrow(): void;
  /** The next `n` bytes (none of them handed out yet) are left out of the chunks. */
  skip(n: number): void;
  /** Moves `length` bytes at `offset` into `outFd` (sendfile); the bytes moved, fewer only at the end of the file. */
  sendAt(outFd: number, offset: number, length: number): number;
}

/** The source's kernel-side access, where it has one. */
export function directOf(source: AsyncIterable<Buffer>): DirectSource | undefined {
  return (source as Partial<ReusableSource>).direct;
}

/** Turns on buffer reuse where the source offers it. */
export function reuseBuffers(source: AsyncIterable<Buffer>): void {
  (source as Partial<ReusableSource>).reuseBuffers?.();
}

function syncChunks(fd: number, close: boolean): ReusableSource {
  let reuse = false;
  let size = CHUNK;
  // Positional reads from where the fd stood: skip() and sendAt() need to know where the stream is.
  const start = lseek(fd, 0, SEEK.CUR);
  let pos = start;
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      let spare: Buffer | undefined;
      for (;;) {
        const buf = spare ?? Buffer.allocUnsafeSlow(CHUNK);
        spare = undefined;
        const n = readSync(fd, buf, 0, size, pos);
        if (n === 0) return;
        pos += n;
        yield n === buf.length ? buf : buf.subarray(0, n);
        // The consumer asked for more: with reuse on, it is done with `buf`.
        if (reuse) spare = buf;
      }
    } finally {
      if (close) closeSync(fd);
    }
  }
  return {
    [Symbol.asyncIterator]: () => chunks()[Symbol.asyncIterator](),
    reuseBuffers: () => {
      reuse = true;
    },
    direct: {
      narrow: () => {
        size = DIRECT_CHUNK;
      },
      skip: (n) => {
        pos += n;
      },
      sendAt: (outFd, offset, length) => sendfileAt(outFd, fd, start + offset, length),
    },
  };
}

export interface Progress {
  /** Bytes of input read so far. */
  bytes: number;
  /** Total input size, when known. */
  total?: number;
}

export function abortError(signal: AbortSignal): CanceledError {
  const r = signal.reason;
  return r instanceof CanceledError ? r : new CanceledError();
}

/** Passes chunks through, counting them and stopping at a cancel. */
export async function* counted(
  source: AsyncIterable<Buffer>,
  onBytes: (n: number) => void,
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    if (signal?.aborted) throw abortError(signal);
    onBytes(chunk.length);
    yield chunk;
  }
  if (signal?.aborted) throw abortError(signal);
}

export function fdSize(fd: number): number | undefined {
  try {
    const st = fstatSync(fd);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

const HOLE = 4096;
const ZERO = Buffer.alloc(HOLE);

/**
 * Writes a stream to a regular file at offset 0, leaving every all-zero
 * 4 KiB block as a hole, and sets the length at the end. Returns the size.
 */
export async function writeSparse(
  fd: number,
  source: AsyncIterable<Buffer>,
  signal?: AbortSignal,
): Promise<number> {
  let pos = 0;
  for await (const chunk of source) {
    if (signal?.aborted) throw abortError(signal);
    let off = 0;
    while (off < chunk.length) {
      // Up to the next 4 KiB boundary of the file, so holes line up with blocks.
      const n = Math.min(HOLE - (pos % HOLE), chunk.length - off);
      const piece = chunk.subarray(off, off + n);
      if (!(n === HOLE && piece.equals(ZERO))) {
        // Gather a run of non-zero blocks into one pwrite.
        let end = off + n;
        while (end < chunk.length) {
          const m = Math.min(HOLE, chunk.length - end);
          if (m === HOLE && chunk.subarray(end, end + m).equals(ZERO)) break;
          end += m;
        }
        let w = off;
        while (w < end) w += writeSyncErrno(fd, chunk, w, end - w, pos + (w - off));
        pos += end - off;
        off = end;
        continue;
      }
      pos += n;
      off += n;
    }
  }
  ftruncate(fd, pos);
  return pos;
}

/** Writes a stream to an fd (file or pipe), in order; a non-blocking pipe that is full is waited for. */
export async function writeStream(
  fd: number,
  source: AsyncIterable<Buffer>,
  signal?: AbortSignal,
): Promise<number> {
  let total = 0;
  for await (const chunk of source) {
    if (signal?.aborted) throw abortError(signal);
    let off = 0;
    while (off < chunk.length) {
      try {
        off += await new Promise<number>((resolve, reject) =>
          write(fd, chunk, off, chunk.length - off, null, (err, n) => (err ? reject(err) : resolve(n))),
        );
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    total += chunk.length;
  }
  return total;
}

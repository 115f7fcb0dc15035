import { ArchiveError } from '../errors.js';
import type { DirectSource } from '../io.js';
import type { TarReaderOptions } from '../tar/reader.js';

/**
 * Data of a plain tar in a regular file, moved inside the kernel: what of a
 * file runs past the end of a read goes from the archive into the file
 * with sendfile at its archive offset, and the reads skip those bytes (a
 * big file's data is never copied into JavaScript). Tried and not kept:
 * the same sendfile on a libuv pool thread, beside the main thread, for
 * files of 64 KiB and more: the main thread's CPU fell by 10–25 ms, but
 * the wall time did not move on 2 cores (V8's compiler threads use the
 * second one) and the CPU of all threads rose by 30–60 ms.
 */

/** What the reader's direct() needs from the extractor. */
export interface DirectSink {
  /** The fd of the file whose data comes now, if any. */
  readonly dataFd: number | undefined;
  /** Counts bytes moved into dataFd by the caller. */
  directData(bytes: number): void;
}

/** The reader's direct() for a plain tar in a regular file. */
export function directData(sink: DirectSink, src: DirectSource): NonNullable<TarReaderOptions['direct']> {
  return (offset, length) => {
    if (sink.dataFd === undefined) return false;
    const moved = src.sendAt(sink.dataFd, offset, length);
    sink.directData(moved);
    if (moved < length) throw truncated(offset + moved);
    return true;
  };
}

/** A file's data ends early: sendfile reached the end of the archive. */
export function truncated(at: number): ArchiveError {
  return new ArchiveError(`The archive is truncated (in an entry, at byte ${at})`);
}

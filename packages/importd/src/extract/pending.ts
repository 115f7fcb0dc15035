import { setImmediate as nextTurn } from 'node:timers/promises';
import { spareCpu } from '@sd/sys';
import { ArchiveError } from '../errors.js';
import type { DirectSource } from '../io.js';
import type { TarReaderOptions } from '../tar/reader.js';

/**
 * Files whose data moves on a libuv pool thread (sendfile from the archive
 * into the file, never through JavaScript) while the main thread goes on
 * with the next entries: the split GNU tar and systemd-import get from two
 * processes. Each such file keeps its fd until its data is in; then it gets
 * its owner, mode, xattrs and mtime and is closed, on the main thread. No
 * fd is closed while a call on it may still run (its number could be
 * reused by the next open): the extraction waits for all before it ends,
 * also when it fails.
 */

/** Files moved beside the main thread at once (each holds an fd and a pool thread's turn). */
export const PENDING_MAX = 8;
/**
 * When a file's data moves on a pool thread: from `min` bytes (smaller
 * files are not worth a round trip: their bytes come with the chunks), and
 * only while a core is free unless `ignoreLoad`. Tests change both to
 * drive every file through that path.
 */
export const asyncData = { min: 64 * 1024, ignoreLoad: false };

export class PendingFiles {
  readonly #inFlight = new Set<Promise<void>>();
  #failure: { error: unknown } | undefined;

  get size(): number {
    return this.#inFlight.size;
  }

  /** Throws the first failure of a pending file (the extraction stops at its next entry). */
  check(): void {
    if (this.#failure) throw this.#failure.error;
  }

  add(work: Promise<void>): void {
    const p: Promise<void> = work
      .catch((error: unknown) => {
        this.#failure ??= { error };
      })
      .finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
  }

  /** Lets completed calls report (they come back through the event loop), then waits until fewer than `max` are left. */
  async turn(max = PENDING_MAX): Promise<void> {
    if (this.#inFlight.size === 0) return;
    await nextTurn();
    while (this.#inFlight.size >= max) await Promise.race(this.#inFlight);
    this.check();
  }

  /** Waits for every pending file; throws the first failure. */
  async settle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
    this.check();
  }
}

/** What the reader's direct() needs from the extractor. */
export interface DirectSink {
  readonly pending: PendingFiles;
  /** The fd of the file whose data comes now, if any. */
  readonly dataFd: number | undefined;
  /** Counts bytes moved into dataFd by the caller. */
  directData(bytes: number): void;
  /** Hands the rest of the current file's data to `move`, which runs beside the extraction. */
  deferData(length: number, move: (fd: number) => Promise<number>): void;
}

/**
 * The reader's direct() for a plain tar in a regular file: a big file's data
 * goes from the archive into the file on a pool thread when a core is free;
 * otherwise what runs past a chunk is moved with a synchronous sendfile, and
 * the rest comes with the chunks.
 */
export function directData(sink: DirectSink, src: DirectSource): NonNullable<TarReaderOptions['direct']> {
  return (offset, length, atChunkEnd) => {
    if (sink.dataFd === undefined) return false;
    const pending = sink.pending.size;
    if (
      length >= asyncData.min &&
      pending < PENDING_MAX &&
      (asyncData.ignoreLoad || spareCpu(pending > 0 ? 2 : 1))
    ) {
      sink.deferData(length, (fd) => src.sendAtAsync(fd, offset, length));
      return true;
    }
    if (!atChunkEnd) return false;
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

import { DecompressError } from '../errors.js';
import {
  Bzip2Scanner,
  joinPieces,
  MAX_PIECE_BYTES,
  type Piece,
  pieceStream,
  type StreamEnd,
} from './bzip2-blocks.js';
import { type AsyncFn, callAsync, hostLibrary, threads } from './native.js';

/**
 * bzip2 decoded block by block in parallel on libuv's pool threads (koffi
 * async calls; koffi in worker threads is not allowed): libbz2 itself is
 * single-threaded, and decoding was 96 % of a .tar.bz2 import. The scanner
 * cuts the stream into blocks; each is decoded as a standalone stream with
 * BZ2_bzBuffToBuffDecompress, which checks the block's CRC; the combined
 * CRC of each stream is checked here. A window of blocks is in flight, so
 * memory stays bounded whatever the input.
 */

const BZ_OK = 0;
const BZ_MEM_ERROR = -3;
const BZ_OUTBUFF_FULL = -8;
/** Most blocks decode to about 1 MB; a block of long runs can reach 51× its 900 kB. */
const OUT_SIZE = 4 * 1024 * 1024;

let decodeFn: AsyncFn | undefined;

function buffToBuff(): AsyncFn {
  decodeFn ??= hostLibrary('libbz2.so.1.0', 'bzip2').func(
    'int BZ2_bzBuffToBuffDecompress(uint8_t *dest, uint8_t *destLen, uint8_t *source, uint32_t sourceLen, int small, int verbosity)',
  ) as AsyncFn;
  return decodeFn;
}

interface Decoded {
  code: number;
  out: Buffer;
  len: number;
}

/** Decodes one piece into `out` on a pool thread; the arguments stay referenced here until it settles. */
function decodePiece(piece: Piece, out: Buffer): Promise<Decoded> {
  const src = pieceStream(piece);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(out.length, 0);
  return callAsync(buffToBuff(), [out, len, src, src.length, 0, 0], (code: number) => {
    void src;
    return { code, out, len: len.readUInt32LE(0) };
  });
}

export interface ParallelBzip2Options {
  /** The consumer is done with each output buffer when it asks for the next. */
  reuse?: boolean;
  /** Blocks decoding at once (default: one per CPU, 2 to 4). */
  window?: number;
  /** Test hook: absolute bit offsets treated as block starts although no magic is there (a false match). */
  fakeSplits?: readonly number[];
}

interface Job {
  piece: Piece;
  done: Promise<Decoded>;
}

const rotl1 = (x: number) => ((x << 1) | (x >>> 31)) >>> 0;

export async function* bzip2DecodeParallel(
  source: AsyncIterable<Buffer>,
  options: ParallelBzip2Options = {},
): AsyncGenerator<Buffer> {
  // One block per CPU (more only thrash the caches: libbz2's inverse BWT is a random walk over 3.6 MB),
  // at most 4: libuv has 4 pool threads by default, and sd-importd's fd poller holds one.
  const window = Math.max(1, options.window ?? Math.min(Math.max(threads(), 2), 4));
  const reuse = options.reuse ?? false;
  const it = source[Symbol.asyncIterator]();
  const scanner = new Bzip2Scanner(options.fakeSplits);
  const queue: (Job | StreamEnd)[] = [];
  const free: Buffer[] = [];
  let big: Buffer | undefined;
  let inputDone = false;
  let scanDone = false;

  const outBuffer = () => free.pop() ?? Buffer.allocUnsafeSlow(OUT_SIZE);
  const start = (piece: Piece): Job => {
    const done = decodePiece(piece, outBuffer());
    done.catch(() => {});
    return { piece, done };
  };
  /** Scans until `want` jobs are queued (or the input ends). */
  const fill = async (want: number): Promise<void> => {
    while (!scanDone && queue.filter((q) => 'piece' in q).length < want) {
      const n = scanner.next();
      if (n === 'done') scanDone = true;
      else if (n === 'more') {
        if (inputDone) throw new DecompressError('bzip2: the compressed stream is truncated');
        const r = await it.next();
        if (r.done) {
          inputDone = true;
          scanner.end();
        } else scanner.push(r.value);
      } else queue.push(n.kind === 'end' ? n : start(n));
    }
  };
  /** A job's result once it settled; its output buffer goes back to the free list. */
  const discard = async (j: Job) => {
    const d = await j.done.catch(() => undefined);
    if (d && d.out !== big) free.push(d.out);
  };

  let combined = 0;
  try {
    for (;;) {
      await fill(window);
      const head = queue.shift();
      if (!head) {
        if (scanDone) return;
        continue;
      }
      if (!('piece' in head)) {
        if (head.crc !== combined)
          throw new DecompressError('bzip2: the stream CRC does not match its blocks: the stream is corrupt');
        combined = 0;
        continue;
      }
      let piece = head.piece;
      let d = await head.done;
      let triedBig = false;
      while (d.code !== BZ_OK) {
        if (d.code === BZ_MEM_ERROR) throw new DecompressError('bzip2: libbz2 is out of memory');
        if (d.out !== big) free.push(d.out);
        if (d.code === BZ_OUTBUFF_FULL && !triedBig) {
          // A block of long runs: decoded again into room for the most any block can make.
          triedBig = true;
          const most = 51 * 100_000 * piece.level;
          if (!big || big.length < most) big = Buffer.allocUnsafeSlow(most);
          d = await decodePiece(piece, big);
          continue;
        }
        // Not a block on its own: a false magic cut it. Join it with the next piece of the stream and retry.
        await fill(1);
        const next = queue[0];
        if (!next || !('piece' in next) || piece.raw.length + next.piece.raw.length > MAX_PIECE_BYTES)
          throw new DecompressError(`bzip2: the compressed stream is corrupt (libbz2 error ${d.code})`);
        queue.shift();
        await discard(next);
        piece = joinPieces(piece, next.piece);
        triedBig = false;
        d = await decodePiece(piece, outBuffer());
      }
      combined = rotl1(combined) ^ piece.crc;
      combined >>>= 0;
      // Keep the window full while the consumer works on this block.
      await fill(window);
      const out = d.out;
      yield out.subarray(0, d.len);
      if (out === big) {
        if (!reuse) big = undefined;
      } else if (reuse) free.push(out);
    }
  } finally {
    for (const q of queue) if ('piece' in q) await q.done.catch(() => {});
    await it.return?.();
  }
}

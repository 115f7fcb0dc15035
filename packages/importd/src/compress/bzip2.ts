import { DecompressError } from '../errors.js';
import type { AsyncStreamCodec, StepResult, StreamCodec } from './codec.js';
import { addr, callAsync, hostLibrary } from './native.js';

/**
 * bzip2 through the host's libbz2. Files made by pbzip2/lbzip2 are several
 * streams back to back: the decoder starts a new one after each end.
 */

// bz_stream on LP64: next_in 0, avail_in 8, total_in_lo32 12, total_in_hi32 16,
// next_out 24, avail_out 32, …, state 48, bzalloc 56, bzfree 64, opaque 72.
const STREAM_SIZE = 80;
const BZ_RUN = 0;
const BZ_FINISH = 2;
const BZ_OK = 0;
const BZ_RUN_OK = 1;
const BZ_FINISH_OK = 3;
const BZ_STREAM_END = 4;

type Fn = (...args: unknown[]) => number;
let fns: Record<'dInit' | 'dec' | 'dEnd' | 'cInit' | 'comp' | 'cEnd', Fn> | undefined;

function bz() {
  if (!fns) {
    const lib = hostLibrary('libbz2.so.1.0', 'bzip2');
    fns = {
      dInit: lib.func('int BZ2_bzDecompressInit(uint8_t *strm, int verbosity, int small)') as Fn,
      dec: lib.func('int BZ2_bzDecompress(uint8_t *strm)') as Fn,
      dEnd: lib.func('int BZ2_bzDecompressEnd(uint8_t *strm)') as Fn,
      cInit: lib.func(
        'int BZ2_bzCompressInit(uint8_t *strm, int blockSize100k, int verbosity, int workFactor)',
      ) as Fn,
      comp: lib.func('int BZ2_bzCompress(uint8_t *strm, int action)') as Fn,
      cEnd: lib.func('int BZ2_bzCompressEnd(uint8_t *strm)') as Fn,
    };
  }
  return fns;
}

class Bzip2Codec implements StreamCodec {
  readonly name = 'bzip2';
  readonly #encode: boolean;
  #strm = Buffer.alloc(STREAM_SIZE);
  #open = false;
  /** Nothing fed to the current decoder stream yet (after a stream end). */
  #fresh = true;

  constructor(encode: boolean) {
    this.#encode = encode;
    this.#init();
  }

  #init(): void {
    this.#strm = Buffer.alloc(STREAM_SIZE);
    const r = this.#encode ? bz().cInit(this.#strm, 9, 0, 0) : bz().dInit(this.#strm, 0, 0);
    if (r !== BZ_OK) throw new DecompressError(`bzip2: cannot set up libbz2 (${r})`);
    this.#open = true;
    this.#fresh = true;
  }

  /** Points the stream at the buffers: the native call's arguments, or undefined when there is nothing to call. */
  #prepare(input: Buffer, inOff: number, out: Buffer, outOff: number, finishing: boolean) {
    const availIn = Math.min(input.length - inOff, 0x7fffffff);
    const availOut = Math.min(out.length - outOff, 0x7fffffff);
    if (!this.#encode && availIn === 0 && this.#fresh) return { availIn, availOut, args: undefined };
    const s = this.#strm;
    s.writeBigUInt64LE(availIn > 0 ? addr(input, inOff) : 0n, 0);
    s.writeUInt32LE(availIn, 8);
    s.writeBigUInt64LE(addr(out, outOff), 24);
    s.writeUInt32LE(availOut, 32);
    const args: [Fn, unknown[]] = this.#encode
      ? [bz().comp, [s, finishing ? BZ_FINISH : BZ_RUN]]
      : [bz().dec, [s]];
    return { availIn, availOut, args };
  }

  step(input: Buffer, inOff: number, out: Buffer, outOff: number, finishing: boolean): StepResult {
    const p = this.#prepare(input, inOff, out, outOff, finishing);
    if (!p.args) return { inUsed: 0, outUsed: 0, ended: finishing };
    return this.#result(p.args[0](...p.args[1]), p.availIn, p.availOut, finishing);
  }

  stepAsync(
    input: Buffer,
    inOff: number,
    out: Buffer,
    outOff: number,
    finishing: boolean,
  ): Promise<StepResult> {
    const p = this.#prepare(input, inOff, out, outOff, finishing);
    const args = p.args;
    if (!args) return Promise.resolve({ inUsed: 0, outUsed: 0, ended: finishing });
    return callAsync(args[0], args[1], (r: number) => this.#result(r, p.availIn, p.availOut, finishing));
  }

  #result(r: number, availIn: number, availOut: number, finishing: boolean): StepResult {
    const s = this.#strm;
    const inUsed = availIn - s.readUInt32LE(8);
    const outUsed = availOut - s.readUInt32LE(32);
    if (inUsed > 0) this.#fresh = false;
    if (r === BZ_STREAM_END) {
      if (this.#encode) return { inUsed, outUsed, ended: true };
      // Another stream may follow: start over.
      this.close();
      this.#init();
      return { inUsed, outUsed, ended: finishing && inUsed === availIn };
    }
    if (r !== BZ_OK && r !== BZ_RUN_OK && r !== BZ_FINISH_OK)
      throw new DecompressError(`bzip2: the compressed stream is corrupt (libbz2 error ${r})`);
    return { inUsed, outUsed, ended: false };
  }

  close(): void {
    if (!this.#open) return;
    if (this.#encode) bz().cEnd(this.#strm);
    else bz().dEnd(this.#strm);
    this.#open = false;
  }
}

export const bzip2Decoder = (): AsyncStreamCodec => new Bzip2Codec(false);
export const bzip2Encoder = (): StreamCodec => new Bzip2Codec(true);

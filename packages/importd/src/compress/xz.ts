import { DecompressError } from '../errors.js';
import type { AsyncStreamCodec, StepResult, StreamCodec } from './codec.js';
import { addr, callAsync, hostLibrary, threads } from './native.js';

/**
 * xz through the host's liblzma: the multi-threaded stream decoder (blocks
 * of a file written by `xz -T` decode in parallel; single-block files decode
 * like the plain decoder) and the multi-threaded encoder, which writes
 * blocks so that the next import can decode in parallel too.
 */

// lzma_stream on LP64: next_in 0, avail_in 8, total_in 16, next_out 24,
// avail_out 32, total_out 40, allocator 48, internal 56, … 136 bytes.
const STREAM_SIZE = 136;
// lzma_mt: flags 0, threads 4, block_size 8, timeout 16, preset 20, filters 24,
// check 32, … memlimit_threading 64, memlimit_stop 72; 128 bytes.
const MT_SIZE = 128;

const LZMA_OK = 0;
const LZMA_STREAM_END = 1;
const LZMA_RUN = 0;
const LZMA_FINISH = 3;
const LZMA_CONCATENATED = 0x08;
const LZMA_CHECK_CRC64 = 4;
const RET_NAMES = [
  'OK',
  'STREAM_END',
  'NO_CHECK',
  'UNSUPPORTED_CHECK',
  'GET_CHECK',
  'MEM_ERROR',
  'MEMLIMIT_ERROR',
  'FORMAT_ERROR',
  'OPTIONS_ERROR',
  'DATA_ERROR',
  'BUF_ERROR',
  'PROG_ERROR',
];

type Fn = (...args: unknown[]) => number;
let fns: { decMt: Fn; encMt: Fn; code: Fn; end: Fn } | undefined;

function lzma() {
  if (!fns) {
    const lib = hostLibrary('liblzma.so.5', 'xz');
    fns = {
      decMt: lib.func('int lzma_stream_decoder_mt(uint8_t *strm, uint8_t *options)') as Fn,
      encMt: lib.func('int lzma_stream_encoder_mt(uint8_t *strm, uint8_t *options)') as Fn,
      code: lib.func('int lzma_code(uint8_t *strm, int action)') as Fn,
      end: lib.func('void lzma_end(uint8_t *strm)') as Fn,
    };
  }
  return fns;
}

class LzmaCodec implements StreamCodec {
  readonly name = 'xz';
  readonly #strm = Buffer.alloc(STREAM_SIZE);
  #open = true;

  constructor(encode: boolean, preset: number) {
    const f = lzma();
    const mt = Buffer.alloc(MT_SIZE);
    mt.writeUInt32LE(encode ? 0 : LZMA_CONCATENATED, 0);
    mt.writeUInt32LE(threads(), 4);
    mt.writeUInt32LE(0, 16); // timeout 0: block until progress
    mt.writeUInt32LE(preset, 20);
    mt.writeInt32LE(LZMA_CHECK_CRC64, 32);
    // A quarter of the RAM would be liblzma's own default; 1 GiB keeps a daemon sane.
    mt.writeBigUInt64LE(1n << 30n, 64);
    mt.writeBigUInt64LE(1n << 32n, 72);
    const ret = encode ? f.encMt(this.#strm, mt) : f.decMt(this.#strm, mt);
    if (ret !== LZMA_OK) {
      this.#open = false;
      throw new DecompressError(`xz: cannot set up liblzma (${RET_NAMES[ret] ?? ret})`);
    }
  }

  step(input: Buffer, inOff: number, out: Buffer, outOff: number, finishing: boolean): StepResult {
    const { availIn, availOut } = this.#prepare(input, inOff, out, outOff);
    return this.#result(lzma().code(this.#strm, finishing ? LZMA_FINISH : LZMA_RUN), availIn, availOut);
  }

  stepAsync(
    input: Buffer,
    inOff: number,
    out: Buffer,
    outOff: number,
    finishing: boolean,
  ): Promise<StepResult> {
    const { availIn, availOut } = this.#prepare(input, inOff, out, outOff);
    return callAsync(lzma().code, [this.#strm, finishing ? LZMA_FINISH : LZMA_RUN], (ret: number) =>
      this.#result(ret, availIn, availOut),
    );
  }

  /** Points the stream at the input and output (next_in, avail_in, next_out, avail_out). */
  #prepare(input: Buffer, inOff: number, out: Buffer, outOff: number): { availIn: number; availOut: number } {
    const s = this.#strm;
    const availIn = input.length - inOff;
    const availOut = out.length - outOff;
    s.writeBigUInt64LE(availIn > 0 ? addr(input, inOff) : 0n, 0);
    s.writeBigUInt64LE(BigInt(availIn), 8);
    s.writeBigUInt64LE(addr(out, outOff), 24);
    s.writeBigUInt64LE(BigInt(availOut), 32);
    return { availIn, availOut };
  }

  #result(ret: number, availIn: number, availOut: number): StepResult {
    const s = this.#strm;
    const inUsed = availIn - Number(s.readBigUInt64LE(8));
    const outUsed = availOut - Number(s.readBigUInt64LE(32));
    if (ret === LZMA_STREAM_END) return { inUsed, outUsed, ended: true };
    // BUF_ERROR is "no progress possible": the driver decides (truncated input).
    if (ret !== LZMA_OK && ret !== 10)
      throw new DecompressError(`xz: ${RET_NAMES[ret] ?? `error ${ret}`} in the compressed stream`);
    return { inUsed, outUsed, ended: false };
  }

  close(): void {
    if (this.#open) lzma().end(this.#strm);
    this.#open = false;
  }
}

export const xzDecoder = (): AsyncStreamCodec => new LzmaCodec(false, 0);
export const xzEncoder = (preset = 6): StreamCodec => new LzmaCodec(true, preset);

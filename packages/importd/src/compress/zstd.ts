import { DecompressError } from '../errors.js';
import type { AsyncStreamCodec, StepResult, StreamCodec } from './codec.js';
import { addr, callAsync, hostLibrary, threads } from './native.js';

/**
 * zstd through the host's libzstd (ZSTD_decompressStream /
 * ZSTD_compressStream2). Concatenated frames decode one after another;
 * the input must end at a frame boundary.
 */

type Fn = (...args: unknown[]) => unknown;
let fns:
  | Record<'createD' | 'freeD' | 'dec' | 'createC' | 'freeC' | 'setP' | 'comp' | 'isErr' | 'errName', Fn>
  | undefined;

function zstd() {
  if (!fns) {
    const lib = hostLibrary('libzstd.so.1', 'zstd');
    fns = {
      createD: lib.func('void *ZSTD_createDCtx()') as Fn,
      freeD: lib.func('size_t ZSTD_freeDCtx(void *dctx)') as Fn,
      dec: lib.func('size_t ZSTD_decompressStream(void *dctx, uint8_t *out, uint8_t *in)') as Fn,
      createC: lib.func('void *ZSTD_createCCtx()') as Fn,
      freeC: lib.func('size_t ZSTD_freeCCtx(void *cctx)') as Fn,
      setP: lib.func('size_t ZSTD_CCtx_setParameter(void *cctx, int param, int value)') as Fn,
      comp: lib.func('size_t ZSTD_compressStream2(void *cctx, uint8_t *out, uint8_t *in, int endOp)') as Fn,
      isErr: lib.func('unsigned int ZSTD_isError(size_t code)') as Fn,
      errName: lib.func('const char *ZSTD_getErrorName(size_t code)') as Fn,
    };
  }
  return fns;
}

const ZSTD_c_compressionLevel = 100;
const ZSTD_c_nbWorkers = 400;
const ZSTD_e_continue = 0;
const ZSTD_e_end = 2;

class ZstdCodec implements StreamCodec {
  readonly name = 'zstd';
  readonly #encode: boolean;
  #ctx: unknown = undefined;
  // ZSTD_inBuffer / ZSTD_outBuffer: { ptr, size, pos }.
  readonly #in = Buffer.alloc(24);
  readonly #out = Buffer.alloc(24);
  /** The last return of ZSTD_decompressStream: 0 at a frame boundary. */
  #hint: bigint = 0n;

  constructor(encode: boolean, level: number) {
    this.#encode = encode;
    const f = zstd();
    this.#ctx = encode ? f.createC() : f.createD();
    if (this.#ctx === null) throw new DecompressError('zstd: cannot allocate a context');
    if (encode) {
      this.#check(f.setP(this.#ctx, ZSTD_c_compressionLevel, level) as bigint | number);
      // Worker threads only where libzstd was built with them; an error means single-threaded.
      f.setP(this.#ctx, ZSTD_c_nbWorkers, threads());
    }
  }

  #check(ret: bigint | number): bigint {
    const r = BigInt(ret);
    if (zstd().isErr(r)) throw new DecompressError(`zstd: ${zstd().errName(r) as string}`);
    return r;
  }

  /** Fills the in/out descriptors; the arguments of the native call, or undefined when there is nothing to call. */
  #prepare(
    input: Buffer,
    inOff: number,
    out: Buffer,
    outOff: number,
    finishing: boolean,
  ): unknown[] | undefined {
    const availIn = input.length - inOff;
    const i = this.#in;
    const o = this.#out;
    i.writeBigUInt64LE(availIn > 0 ? addr(input, inOff) : 0n, 0);
    i.writeBigUInt64LE(BigInt(availIn), 8);
    i.writeBigUInt64LE(0n, 16);
    o.writeBigUInt64LE(addr(out, outOff), 0);
    o.writeBigUInt64LE(BigInt(out.length - outOff), 8);
    o.writeBigUInt64LE(0n, 16);
    if (this.#encode) return [this.#ctx, o, i, finishing ? ZSTD_e_end : ZSTD_e_continue];
    return availIn > 0 || this.#hint !== 0n ? [this.#ctx, o, i] : undefined;
  }

  #result(raw: bigint | number | undefined, availIn: number, finishing: boolean): StepResult {
    const ret = raw === undefined ? 0n : this.#check(raw);
    if (!this.#encode) this.#hint = ret;
    const inUsed = Number(this.#in.readBigUInt64LE(16));
    const outUsed = Number(this.#out.readBigUInt64LE(16));
    // Encoder: 0 left to flush after e_end. Decoder: at the end of input on a frame boundary.
    const ended = finishing && ret === 0n && inUsed === availIn;
    return { inUsed, outUsed, ended };
  }

  step(input: Buffer, inOff: number, out: Buffer, outOff: number, finishing: boolean): StepResult {
    const args = this.#prepare(input, inOff, out, outOff, finishing);
    const fn = this.#encode ? zstd().comp : zstd().dec;
    const raw = args ? (fn(...args) as bigint) : undefined;
    return this.#result(raw, input.length - inOff, finishing);
  }

  stepAsync(
    input: Buffer,
    inOff: number,
    out: Buffer,
    outOff: number,
    finishing: boolean,
  ): Promise<StepResult> {
    const args = this.#prepare(input, inOff, out, outOff, finishing);
    if (!args) return Promise.resolve(this.#result(undefined, input.length - inOff, finishing));
    const fn = this.#encode ? zstd().comp : zstd().dec;
    return callAsync(fn, args, (raw: bigint) => this.#result(raw, input.length - inOff, finishing));
  }

  close(): void {
    if (this.#ctx === undefined) return;
    if (this.#encode) zstd().freeC(this.#ctx);
    else zstd().freeD(this.#ctx);
    this.#ctx = undefined;
  }
}

export const zstdDecoder = (): AsyncStreamCodec => new ZstdCodec(false, 0);
export const zstdEncoder = (level = 3): StreamCodec => new ZstdCodec(true, level);

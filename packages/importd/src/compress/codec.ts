import { DecompressError } from '../errors.js';

/**
 * A streaming (de)compressor over a host C library: one call moves bytes
 * from `input[inOff..]` into `out[outOff..]` and says how many it used.
 * The driver below turns it into a lazy generator, so one input chunk never
 * produces more than one output buffer at a time, whatever the ratio (a
 * decompression bomb stays within OUT_SIZE of memory).
 */
export interface StepResult {
  inUsed: number;
  outUsed: number;
  /** The (last) stream ended. */
  ended: boolean;
}

export interface StreamCodec {
  readonly name: string;
  step(input: Buffer, inOff: number, out: Buffer, outOff: number, finishing: boolean): StepResult;
  /** Frees the native state; idempotent. */
  close(): void;
}

export const OUT_SIZE = 1024 * 1024;
const MIN_TAIL = 64 * 1024;

/** Output buffers handed out by one codec: never reused, so a consumer may keep them. */
class OutBuffer {
  buf = Buffer.allocUnsafeSlow(OUT_SIZE);
  pos = 0;
  take(): Buffer {
    const b = this.buf.subarray(0, this.pos);
    const rest = this.buf.length - this.pos;
    this.buf = rest >= MIN_TAIL ? this.buf.subarray(this.pos) : Buffer.allocUnsafeSlow(OUT_SIZE);
    this.pos = 0;
    return b;
  }
}

/**
 * Feeds all of `input` (finishing: the end of the input) and yields output
 * as it is produced. Throws DecompressError when the end comes before the
 * codec's stream ended.
 */
export function* drive(
  codec: StreamCodec,
  out: { o?: OutBuffer },
  input: Buffer,
  finishing: boolean,
  decoding: boolean,
): Generator<Buffer> {
  if (!out.o) out.o = new OutBuffer();
  const o = out.o;
  let inOff = 0;
  for (;;) {
    const r = codec.step(input, inOff, o.buf, o.pos, finishing);
    inOff += r.inUsed;
    o.pos += r.outUsed;
    if (r.ended) {
      if (o.pos > 0) yield o.take();
      if (decoding && inOff < input.length)
        throw new DecompressError(
          `${codec.name}: ${input.length - inOff} bytes of garbage after the end of the stream`,
        );
      return;
    }
    if (o.pos === o.buf.length) {
      yield o.take();
      continue;
    }
    // Output space left: the codec has taken all it could.
    if (inOff === input.length && !finishing) {
      if (o.pos > 0) yield o.take();
      return;
    }
    if (r.inUsed === 0 && r.outUsed === 0) {
      if (finishing) throw new DecompressError(`${codec.name}: the compressed stream is truncated`);
      throw new DecompressError(`${codec.name}: the codec made no progress`);
    }
  }
}

/** Runs `codec` over an async source of chunks; the codec is closed at the end, also on error. */
export async function* transformWith(
  codec: StreamCodec,
  source: AsyncIterable<Buffer>,
  decoding: boolean,
): AsyncGenerator<Buffer> {
  const state: { o?: OutBuffer } = {};
  try {
    for await (const chunk of source) yield* drive(codec, state, chunk, false, decoding);
    yield* drive(codec, state, Buffer.alloc(0), true, decoding);
  } finally {
    codec.close();
  }
}

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
  /**
   * The same step on a libuv pool thread (koffi's async call): the buffers
   * must stay untouched and referenced until it settles, and only one step
   * may run at a time.
   */
  stepAsync?(
    input: Buffer,
    inOff: number,
    out: Buffer,
    outOff: number,
    finishing: boolean,
  ): Promise<StepResult>;
  /** Frees the native state; idempotent. */
  close(): void;
}

export type AsyncStreamCodec = StreamCodec & Required<Pick<StreamCodec, 'stepAsync'>>;

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

/** Output per pool-thread step: big enough that a step's cost dwarfs the hop to the pool thread. */
export const ASYNC_OUT_SIZE = 4 * 1024 * 1024;
const EMPTY: Buffer = Buffer.alloc(0);

/**
 * Decodes on a libuv pool thread, one step ahead of the consumer: the step
 * that fills the next output buffer is started before the current one is
 * yielded, so decompression (bzip2 is ~8 s of CPU for a 150 MB tree)
 * overlaps the synchronous tar extraction instead of adding to it. Output
 * buffers are fresh, so the consumer may keep them; at most two are in
 * flight, so memory stays flat. With `reuse`, the consumer promises to be
 * done with a buffer when it asks for the next, and two buffers alternate
 * (fresh 4 MiB buffers cost a page fault per 4 KiB and frequent garbage
 * collections: a third of a .tar.zst import). The codec is closed only after a running
 * step settled (freeing its state under the pool thread would be a
 * use-after-free).
 */
export async function* transformPipelined(
  codec: AsyncStreamCodec,
  source: AsyncIterable<Buffer>,
  decoding: boolean,
  reuse = false,
): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  /** The buffer the consumer had last; with `reuse`, free again once it asks for more. */
  let spare: Buffer | undefined;
  let input = EMPTY;
  let inOff = 0;
  let finishing = false;
  // `inp` keeps the input the native step points into referenced until it settles.
  type Job = Promise<{ r: StepResult; out: Buffer; inp: Buffer }>;
  let job: Job | undefined;
  const more = async (): Promise<void> => {
    while (inOff === input.length && !finishing) {
      const n = await it.next();
      if (n.done) {
        finishing = true;
        input = EMPTY;
      } else input = n.value;
      inOff = 0;
    }
  };
  const start = (): Job => {
    const out = spare ?? Buffer.allocUnsafeSlow(ASYNC_OUT_SIZE);
    spare = undefined;
    const inp = input;
    return codec.stepAsync(inp, inOff, out, 0, finishing).then((r) => ({ r, out, inp }));
  };
  try {
    await more();
    job = start();
    for (;;) {
      const { r, out } = await job;
      job = undefined;
      inOff += r.inUsed;
      const produced = r.outUsed > 0 ? out.subarray(0, r.outUsed) : undefined;
      if (r.ended) {
        if (produced) yield produced;
        if (decoding && inOff < input.length)
          throw new DecompressError(
            `${codec.name}: ${input.length - inOff} bytes of garbage after the end of the stream`,
          );
        return;
      }
      if (r.inUsed === 0 && r.outUsed === 0) {
        if (finishing) throw new DecompressError(`${codec.name}: the compressed stream is truncated`);
        if (inOff < input.length) throw new DecompressError(`${codec.name}: the codec made no progress`);
      }
      await more();
      job = start();
      if (produced) {
        yield produced;
        if (reuse) spare = out;
      } else if (reuse) spare = out;
    }
  } finally {
    if (job) await job.catch(() => {});
    codec.close();
    await it.return?.();
  }
}

import { DecompressError } from '../errors.js';

/**
 * Splits a bzip2 stream into its blocks without decoding them, so they can
 * be decoded in parallel (as lbzip2 does). A bzip2 stream is "BZh" + a level
 * digit, then blocks that each start with the 48-bit magic 0x314159265359 and
 * the block's CRC, at any bit offset, then the end-of-stream magic
 * 0x177245385090, the combined CRC and padding to a byte; several streams
 * may follow each other. Each block becomes a standalone one-block stream
 * (header + the block's bits + end-of-stream magic + the block's CRC as the
 * stream CRC) that libbz2 decodes on its own.
 *
 * A magic found inside compressed data by chance cuts a block in two; both
 * halves then fail to decode (no end-of-block symbol where the next magic
 * is, or CRC mismatch), and the decoder joins them again (joinPieces).
 */

const BLOCK_HI = 0x314159;
const BLOCK_LO = 0x265359;
const EOS_HI = 0x177245;
const EOS_LO = 0x385090;
/** A block's magic and CRC: the next magic cannot start before. */
const MIN_BLOCK_BITS = 80;
/**
 * The largest compressed block libbz2 accepts is under 2.3 MB (900,001
 * symbols of at most 20 bits, plus tables): a piece beyond this has no real
 * block boundary in it and the stream is corrupt.
 */
export const MAX_PIECE_BYTES = 4 * 1024 * 1024;

/** The bytes at offsets 1 and 2 from where a magic starts at bit `s` of a byte are fixed: a table finds candidates with one lookup per byte. */
const CANDIDATES = (() => {
  const t = new Uint16Array(65536);
  const block = BLOCK_HI * 2 ** 24 + BLOCK_LO;
  const eos = EOS_HI * 2 ** 24 + EOS_LO;
  for (let s = 0; s < 8; s++) {
    t[Math.floor(block / 2 ** (24 + s)) & 0xffff]! |= 1 << s;
    t[Math.floor(eos / 2 ** (24 + s)) & 0xffff]! |= 1 << (8 + s);
  }
  return t;
})();

/** `n` ≤ 24 bits at bit `p` of `b`, most significant first (bytes past the end read as 0). */
export function bitsAt(b: Buffer, p: number, n: number): number {
  const i = p >>> 3;
  const v = ((b[i] ?? 0) << 24) | ((b[i + 1] ?? 0) << 16) | ((b[i + 2] ?? 0) << 8) | (b[i + 3] ?? 0);
  return (v >>> (32 - (p & 7) - n)) & ((1 << n) - 1);
}

const isBlockMagic = (b: Buffer, p: number) =>
  bitsAt(b, p, 24) === BLOCK_HI && bitsAt(b, p + 24, 24) === BLOCK_LO;
const isEosMagic = (b: Buffer, p: number) => bitsAt(b, p, 24) === EOS_HI && bitsAt(b, p + 24, 24) === EOS_LO;
const crcAt = (b: Buffer, p: number) => ((bitsAt(b, p, 16) << 16) | bitsAt(b, p + 16, 16)) >>> 0;

/** One block's bits, copied out of the input: `raw` bit `bitOff` is its first bit. */
export interface Piece {
  kind: 'piece';
  raw: Buffer;
  bitOff: number;
  nbits: number;
  /** The block's CRC (the 32 bits after its magic). */
  crc: number;
  /** The stream's level digit (1–9): libbz2 sizes its state by it. */
  level: number;
}

/** The end of a stream and the combined CRC it declares. */
export interface StreamEnd {
  kind: 'end';
  crc: number;
}

/** Piece `a` and the piece right after it as one: a false magic between them. */
export function joinPieces(a: Piece, b: Piece): Piece {
  const head = a.raw.subarray(0, (a.bitOff + a.nbits) >>> 3);
  return { ...a, raw: Buffer.concat([head, b.raw]), nbits: a.nbits + b.nbits };
}

/** The standalone one-block stream libbz2 decodes for a piece. */
export function pieceStream(p: Piece): Buffer {
  const bodyBytes = (p.nbits + 7) >>> 3;
  // Header (4) + body + end magic and CRC (80 bits) + a byte of slack for the bit shift.
  const out = Buffer.alloc(4 + bodyBytes + 11);
  out.write('BZh', 0, 'latin1');
  out[3] = 0x30 + p.level;
  const src = p.raw;
  const s = p.bitOff;
  if (s === 0) src.copy(out, 4, 0, bodyBytes);
  else {
    // Four bytes at a time through DataViews: a third of a byte loop's time (Buffer's readUInt32BE is slower still).
    const sv = new DataView(src.buffer, src.byteOffset, src.length);
    const ov = new DataView(out.buffer, out.byteOffset, out.length);
    let j = 0;
    for (; j + 5 <= src.length && j + 4 <= bodyBytes; j += 4)
      ov.setUint32(4 + j, ((sv.getUint32(j) << s) | (src[j + 4]! >>> (8 - s))) >>> 0);
    for (; j < bodyBytes; j++) out[4 + j] = ((src[j]! << s) | ((src[j + 1] ?? 0) >>> (8 - s))) & 0xff;
  }
  let bit = 32 + p.nbits;
  // Bits of the body past its end came from the next block: clear them.
  if (bit & 7) out[bit >>> 3]! &= (0xff00 >>> (bit & 7)) & 0xff;
  const put = (v: number, n: number) => {
    for (let k = n - 1; k >= 0; k--, bit++) if ((v >>> k) & 1) out[bit >>> 3]! |= 0x80 >>> (bit & 7);
  };
  put(EOS_HI, 24);
  put(EOS_LO, 24);
  put(p.crc >>> 16, 16);
  put(p.crc & 0xffff, 16);
  return out.subarray(0, (bit + 7) >>> 3);
}

/**
 * Feed compressed chunks with push()/end(); next() hands out the pieces and
 * stream ends in order, 'more' when it needs input, 'done' at the end.
 * Throws DecompressError on a stream that cannot be bzip2.
 */
export class Bzip2Scanner {
  #buf = Buffer.alloc(0);
  /** Absolute byte offset of #buf[0] in the input. */
  #base = 0;
  /** Byte in #buf to scan from. */
  #scan = 0;
  /** Bit in #buf where the current block's magic starts; -1 when a stream header comes next. */
  #start = -1;
  #level = 0;
  #streams = 0;
  #ended = false;
  #out: (Piece | StreamEnd)[] = [];
  /** Test hook: absolute bit offsets reported as block starts although no magic is there. */
  readonly #fakes: number[];

  constructor(fakeSplits: readonly number[] = []) {
    this.#fakes = [...fakeSplits].sort((a, b) => a - b);
  }

  push(chunk: Buffer): void {
    // A copy: the source may reuse its buffer.
    this.#buf = Buffer.concat([this.#buf, chunk]);
  }

  end(): void {
    this.#ended = true;
  }

  next(): Piece | StreamEnd | 'more' | 'done' {
    for (;;) {
      const o = this.#out.shift();
      if (o) return o;
      const r = this.#start < 0 ? this.#header() : this.#blocks();
      if (r !== undefined) return r;
    }
  }

  /** Drops the bytes before byte `k`. */
  #drop(k: number): void {
    this.#buf = this.#buf.subarray(k);
    this.#base += k;
    this.#scan -= k;
    if (this.#start >= 0) this.#start -= 8 * k;
  }

  #header(): 'more' | 'done' | undefined {
    const b = this.#buf;
    // No input at all is no output, as libbz2's streaming decoder has it.
    if (b.length === 0 && this.#ended) return 'done';
    if (b.length < 10 && !this.#ended) return 'more';
    if (b.toString('latin1', 0, 3) !== 'BZh' || b[3]! < 0x31 || b[3]! > 0x39) {
      throw new DecompressError(
        this.#streams > 0
          ? `bzip2: ${b.length} bytes of garbage after the end of the stream`
          : 'bzip2: not a bzip2 stream',
      );
    }
    if (b.length < 10) throw new DecompressError('bzip2: the compressed stream is truncated');
    this.#level = b[3]! - 0x30;
    if (isEosMagic(b, 32)) {
      // An empty stream.
      const ok = this.#streamEnd(32);
      if (ok === undefined) return 'more';
      if (!ok) throw new DecompressError('bzip2: garbage after an empty stream');
      this.#streams++;
      return undefined;
    }
    if (!isBlockMagic(b, 32)) throw new DecompressError('bzip2: the stream does not start with a block');
    this.#streams++;
    this.#start = 32;
    this.#scan = (32 + MIN_BLOCK_BITS) >>> 3;
    return undefined;
  }

  /**
   * The end of stream at bit `p` when what follows is the end of input or
   * another stream: queues `piece` (the stream's last block) and the end.
   * False: not an end (a false magic). Undefined: more input needed.
   */
  #streamEnd(p: number, piece?: Piece): boolean | undefined {
    const b = this.#buf;
    const e = (p + 80 + 7) >>> 3;
    if (b.length < e + 10 && !this.#ended) return undefined;
    const atEnd = b.length === e;
    const another =
      b.length >= e + 10 &&
      b.toString('latin1', e, e + 3) === 'BZh' &&
      b[e + 3]! >= 0x31 &&
      b[e + 3]! <= 0x39 &&
      (isBlockMagic(b, 8 * (e + 4)) || isEosMagic(b, 8 * (e + 4)));
    if (!atEnd && !another) return false;
    if (piece) this.#out.push(piece);
    this.#out.push({ kind: 'end', crc: crcAt(b, p + 48) });
    this.#start = -1;
    this.#drop(e);
    this.#scan = 0;
    return true;
  }

  /** The current block as a piece that ends at bit `end`. */
  #piece(end: number): Piece {
    const b = this.#buf;
    const start = this.#start;
    return {
      kind: 'piece',
      raw: Buffer.from(b.subarray(start >>> 3, (end + 7) >>> 3)),
      bitOff: start & 7,
      nbits: end - start,
      crc: crcAt(b, start + 48),
      level: this.#level,
    };
  }

  /** Hands out the current block, ending at bit `end`, where the next starts. */
  #split(end: number): void {
    this.#out.push(this.#piece(end));
    this.#start = end;
    this.#scan = (end + MIN_BLOCK_BITS) >>> 3;
    this.#drop(end >>> 3);
  }

  #blocks(): 'more' | undefined {
    const b = this.#buf;
    const len = b.length;
    const min = this.#start + MIN_BLOCK_BITS;
    for (let i = this.#scan; i + 7 <= len; i++) {
      const t = CANDIDATES[(b[i + 1]! << 8) | b[i + 2]!]!;
      if (t === 0) continue;
      for (let s = 0; s < 8; s++) {
        const p = 8 * i + s;
        if (p < min) continue;
        if (t & (1 << s) && isBlockMagic(b, p)) {
          this.#scan = i;
          if (!this.#fake(p)) this.#split(p);
          return undefined;
        }
        if (t & (1 << (8 + s)) && isEosMagic(b, p)) {
          this.#scan = i;
          if (this.#fake(p)) return undefined;
          const ok = this.#streamEnd(p, this.#piece(p));
          if (ok === undefined) return 'more';
          if (ok) return undefined;
          // A false end magic: data.
        }
      }
    }
    if (8 * len - this.#start > 8 * MAX_PIECE_BYTES)
      throw new DecompressError(
        'bzip2: no block boundary where one must be: the compressed stream is corrupt',
      );
    this.#scan = Math.max(this.#scan, len - 6);
    if (this.#ended) throw new DecompressError('bzip2: the compressed stream is truncated');
    return 'more';
  }

  /** Test hook: a fake block start before the real magic at `p` (not within a block's length of either) is handed out first. */
  #fake(p: number): boolean {
    const abs = (x: number) => 8 * this.#base + x;
    while (this.#fakes.length > 0 && this.#fakes[0]! < abs(this.#start) + 2 * MIN_BLOCK_BITS)
      this.#fakes.shift();
    const f = this.#fakes[0];
    if (f === undefined || f >= abs(p) - 2 * MIN_BLOCK_BITS) return false;
    this.#fakes.shift();
    this.#split(f - 8 * this.#base);
    return true;
  }
}

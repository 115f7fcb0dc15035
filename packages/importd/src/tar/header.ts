import { ArchiveError } from '../errors.js';

/**
 * The tar header block (POSIX ustar, with GNU's base-256 numbers and long
 * names, and PAX extended headers): decoding of hostile input with every
 * field checked, and encoding for export. PAX values stay raw bytes, so
 * binary xattrs (security.capability) survive.
 */

export const BLOCK = 512;

export type EntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

export interface Timestamp {
  /** A number for every time that fits one exactly (no BigInt per entry); a bigint beyond. */
  sec: bigint | number;
  nsec: number;
}

export interface TarEntry {
  path: string;
  type: EntryType;
  /** Permission bits with setuid/setgid/sticky (no file type). */
  mode: number;
  uid: number;
  gid: number;
  /** Data bytes that follow the header (0 except for regular files). */
  size: number;
  mtime: Timestamp;
  /** Target of a symlink or hard link. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes by full name (`user.foo`, `security.capability`). */
  xattrs: Map<string, Buffer>;
}

/** Raw header kinds; the meta ones (x, g, L, K) never reach a consumer. */
export interface RawHeader {
  typeflag: string;
  name: string;
  linkname: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Twelve octal digits: a number holds them exactly. */
  mtime: number;
  devmajor: number;
  devminor: number;
}

/** Largest data size accepted: files bigger than 2^53 bytes cannot be counted exactly in JS. */
export const MAX_SIZE = Number.MAX_SAFE_INTEGER;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes a name field or PAX value as UTF-8; anything else is refused (syscalls take UTF-8). */
export function decodeName(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ArchiveError(
      `${what} is not valid UTF-8: ${JSON.stringify(Buffer.from(bytes).toString('latin1'))}`,
    );
  }
}

/**
 * A NUL-terminated name field as a string: ASCII (nearly every name) is
 * read directly, anything else must be valid UTF-8. One pass, no copies.
 */
function nameField(b: Buffer, off: number, len: number, what: string, nulInside = false): string {
  let end = off;
  const max = off + len;
  let ascii = true;
  for (; end < max; end++) {
    const c = b[end]!;
    // A PAX key is not NUL-terminated: a NUL in it is kept (and refused where names are used).
    if (c === 0 && !nulInside) break;
    if (c > 0x7f) ascii = false;
  }
  return ascii ? b.toString('latin1', off, end) : decodeName(b.subarray(off, end), what);
}

/** nameField's checks without the string, for names nothing reads (an extended header's own). */
function checkNameField(b: Buffer, off: number, len: number, what: string): void {
  const max = off + len;
  for (let end = off; end < max; end++) {
    const c = b[end]!;
    if (c === 0) return;
    if (c > 0x7f) {
      nameField(b, off, len, what);
      return;
    }
  }
}

/** The PAX keys GNU tar writes for every entry, recognised by their bytes (no string made per record). */
function knownPaxKey(b: Buffer, off: number, len: number): string | undefined {
  const c = b[off];
  if (len === 5 && b[off + 1] === 0x74 && b[off + 2] === 0x69 && b[off + 3] === 0x6d && b[off + 4] === 0x65)
    return c === 0x6d ? 'mtime' : c === 0x61 ? 'atime' : c === 0x63 ? 'ctime' : undefined;
  if (len === 4 && c === 0x70 && b[off + 1] === 0x61 && b[off + 2] === 0x74 && b[off + 3] === 0x68)
    return 'path';
  return undefined;
}

/**
 * A numeric field: octal (space/NUL padded) or GNU base-256; negative values
 * are refused. Plain numbers, not BigInt: twelve octal digits fit a double
 * exactly, and BigInt arithmetic per digit is slow on every header.
 */
export function parseNumber(b: Buffer, off: number, len: number, what: string): number {
  const first = b[off]!;
  if (first & 0x80) {
    if (first === 0xff) throw new ArchiveError(`Negative ${what} in tar header`);
    if (first !== 0x80) throw new ArchiveError(`Invalid base-256 ${what} in tar header`);
    let v = 0;
    for (let i = 1; i < len; i++) {
      v = v * 256 + b[off + i]!;
      if (v > Number.MAX_SAFE_INTEGER) throw new ArchiveError(`${what} in tar header is out of range`);
    }
    return v;
  }
  let i = off;
  const end = off + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const ch = b[i]!;
    if (ch >= 0x30 && ch <= 0x37) {
      v = v * 8 + (ch - 0x30);
      digits++;
    } else if (ch === 0x20 || ch === 0) {
      break;
    } else {
      throw new ArchiveError(
        `Invalid octal ${what} in tar header: ${JSON.stringify(b.toString('latin1', off, end))}`,
      );
    }
  }
  for (; i < end; i++)
    if (b[i] !== 0x20 && b[i] !== 0)
      throw new ArchiveError(
        `Invalid octal ${what} in tar header: ${JSON.stringify(b.toString('latin1', off, end))}`,
      );
  if (digits === 0 && what === 'checksum') throw new ArchiveError('Empty checksum in tar header');
  return v;
}

function small(v: number, max: number, what: string): number {
  if (v > max) throw new ArchiveError(`${what} ${v} in tar header is out of range`);
  return v;
}

const ZERO_BLOCK = Buffer.alloc(BLOCK);

export function isZeroBlock(b: Buffer, off = 0): boolean {
  // A header nearly always starts with its name, and always has a checksum: no call into C++ for those.
  if (b[off] !== 0 || b[off + 148] !== 0 || b[off + 154] !== 0) return false;
  return ZERO_BLOCK.compare(b, off, off + BLOCK) === 0;
}

/** The checksum some old tars computed with signed chars. */
function signedChecksum(h: Buffer, off: number): number {
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[off + i]!;
    signed += c > 127 ? c - 256 : c;
  }
  return signed;
}

/** 32-bit words over the memory of the last buffer seen (the reader's chunks recur: one view each). */
let wordsOf: { buf: ArrayBufferLike; words: Uint32Array } | undefined;
function words(b: Buffer): Uint32Array {
  const w = wordsOf;
  if (w && w.buf === b.buffer) return w.words;
  const words = new Uint32Array(b.buffer, 0, b.buffer.byteLength >>> 2);
  wordsOf = { buf: b.buffer, words };
  return words;
}

/**
 * The unsigned byte sum of a header with the checksum field as spaces:
 * four bytes per step, two 16-bit lanes (128 words of at most 2 × 255 each
 * cannot carry between lanes); a quarter of a byte loop's steps on every
 * header. The byte order of the words does not change a sum of bytes.
 */
function unsignedChecksum(b: Buffer, off: number): number {
  const at = b.byteOffset + off;
  // Headers sit at multiples of 512 in the reader's buffers; anywhere else, bytes one by one.
  if ((at & 3) !== 0) return byteChecksum(b, off);
  const w = words(b);
  const base = at >>> 2;
  let lanes = 0;
  for (let i = 0; i < BLOCK / 4; i++) {
    if (i === 37) {
      i++; // bytes 148..155: the checksum field, counted as spaces below
      continue;
    }
    const x = w[base + i]!;
    lanes += (x & 0x00ff00ff) + ((x >>> 8) & 0x00ff00ff);
  }
  return (lanes & 0xffff) + (lanes >>> 16) + 8 * 0x20;
}

function byteChecksum(b: Buffer, off: number): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += b[off + i]!;
  return sum;
}

/** Decodes one header block at `off` (which must not be all zeros); fields are read in place, no copies. */
export function decodeHeader(b: Buffer, off = 0): RawHeader {
  const want = parseNumber(b, off + 148, 8, 'checksum');
  const unsigned = unsignedChecksum(b, off);
  if (unsigned !== want && signedChecksum(b, off) !== want)
    throw new ArchiveError(
      `Bad tar header checksum (${want}, computed ${unsigned}): not a tar archive or corrupt`,
    );
  // "ustar\0" (POSIX) or "ustar " (old GNU), compared by bytes.
  const ustar =
    b[off + 257] === 0x75 &&
    b[off + 258] === 0x73 &&
    b[off + 259] === 0x74 &&
    b[off + 260] === 0x61 &&
    b[off + 261] === 0x72 &&
    (b[off + 262] === 0 || b[off + 262] === 0x20);
  const posix = ustar && b[off + 262] === 0;
  const flag = b[off + 156]!;
  // An extended header's own names are checked as any (invalid UTF-8 is refused) but not made into strings: nothing reads them.
  const meta = flag === 0x78 || flag === 0x67 || flag === 0x4c || flag === 0x4b; // x g L K
  let name = '';
  let linkname = '';
  if (meta) {
    checkNameField(b, off, 100, 'Entry name');
    if (posix && b[off + 345] !== 0) checkNameField(b, off + 345, 155, 'Entry name prefix');
  } else {
    name = nameField(b, off, 100, 'Entry name');
    if (posix && b[off + 345] !== 0) name = `${nameField(b, off + 345, 155, 'Entry name prefix')}/${name}`;
  }
  const type = flag === 0 ? '0' : String.fromCharCode(flag);
  const size = parseNumber(b, off + 124, 12, 'size');
  // The checks in the order they always ran (the first error found is the one reported).
  if (meta) checkNameField(b, off + 157, 100, 'Link target');
  else linkname = nameField(b, off + 157, 100, 'Link target');
  return {
    typeflag: type,
    name,
    linkname,
    mode: small(parseNumber(b, off + 100, 8, 'mode'), 0o7777777, 'mode') & 0o7777,
    uid: small(parseNumber(b, off + 108, 8, 'uid'), 0xfffffffe, 'uid'),
    gid: small(parseNumber(b, off + 116, 8, 'gid'), 0xfffffffe, 'gid'),
    size: small(size, MAX_SIZE, 'size'),
    mtime: parseNumber(b, off + 136, 12, 'mtime'),
    devmajor: ustar ? small(parseNumber(b, off + 329, 8, 'devmajor'), 0xfffff, 'devmajor') : 0,
    devminor: ustar ? small(parseNumber(b, off + 337, 8, 'devminor'), 0xfffff, 'devminor') : 0,
  };
}

/**
 * PAX records: `<len> <key>=<value>\n`, the length counting the whole
 * record. Every record is checked; the values of `unused` keys are not
 * kept. Byte loops instead of indexOf/toString/RegExp: records are short,
 * and each of those is a call into C++ (GNU tar writes a header of three
 * records before every entry).
 */
export function parsePax(data: Buffer, unused?: ReadonlySet<string>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const n = data.length;
  let off = 0;
  while (off < n) {
    if (data[off] === 0) break; // some writers pad with NULs
    let sp = off;
    const spMax = Math.min(n, off + 21);
    while (sp < spMax && data[sp] !== 0x20) sp++;
    if (sp === spMax) throw new ArchiveError('Malformed PAX record: no length');
    let len = 0;
    for (let i = off; i < sp; i++) {
      const c = data[i]!;
      if (c < 0x30 || c > 0x39 || (i === off && c === 0x30))
        throw new ArchiveError(
          `Malformed PAX record length ${JSON.stringify(data.toString('latin1', off, sp))}`,
        );
      len = len * 10 + (c - 0x30);
    }
    if (sp === off) throw new ArchiveError('Malformed PAX record length ""');
    const end = off + len;
    if (end > n || end <= sp + 2) throw new ArchiveError(`PAX record length ${len} runs past its header`);
    if (data[end - 1] !== 0x0a) throw new ArchiveError('Malformed PAX record: no newline at its end');
    let eq = sp + 1;
    while (eq < end && data[eq] !== 0x3d) eq++;
    if (eq >= end - 1 || eq === sp + 1) throw new ArchiveError('Malformed PAX record: no key');
    const key =
      knownPaxKey(data, sp + 1, eq - sp - 1) ?? nameField(data, sp + 1, eq - sp - 1, 'PAX key', true);
    if (unused?.has(key) !== true) {
      // A value pins its header; a small one (every entry's times) may, a big one is copied.
      const value = data.subarray(eq + 1, end - 1);
      out.set(key, n <= 4096 ? value : Buffer.from(value));
    }
    off = end;
  }
  return out;
}

/** A PAX decimal: size, uid, gid. */
export function paxInteger(v: Buffer, key: string, max: number): number {
  const s = v.toString('latin1');
  if (!/^[0-9]{1,16}$/.test(s)) throw new ArchiveError(`Invalid PAX ${key} ${JSON.stringify(s)}`);
  const n = Number(s);
  if (n > max) throw new ArchiveError(`PAX ${key} ${s} is out of range`);
  return n;
}

/**
 * A PAX time: seconds with an optional fraction, possibly negative. Read by
 * bytes (every entry of GNU tar's format has one): seconds of up to 15
 * digits as a number, longer ones as a bigint.
 */
export function paxTime(v: Buffer, key: string): Timestamp {
  const n = v.length;
  const neg = n > 0 && v[0] === 0x2d;
  let i = neg ? 1 : 0;
  const intStart = i;
  let sec = 0;
  for (; i < n; i++) {
    const c = v[i]!;
    if (c < 0x30 || c > 0x39) break;
    sec = sec * 10 + (c - 0x30);
  }
  const intDigits = i - intStart;
  let nsec = 0;
  let fracDigits = 0;
  if (i < n && v[i] === 0x2e) {
    const fracStart = ++i;
    for (; i < n; i++) {
      const c = v[i]!;
      if (c < 0x30 || c > 0x39) break;
      if (i - fracStart < 9) nsec = nsec * 10 + (c - 0x30);
    }
    fracDigits = i - fracStart;
  }
  if (i !== n || intDigits === 0 || intDigits > 19 || fracDigits > 18)
    throw new ArchiveError(`Invalid PAX ${key} ${JSON.stringify(v.toString('latin1'))}`);
  for (let k = Math.min(fracDigits, 9); k < 9; k++) nsec *= 10;
  // Before 1970 with a fraction: one whole second further down, the fraction counted up from it.
  const borrow = neg && nsec > 0;
  if (borrow) nsec = 1e9 - nsec;
  if (intDigits > 15) {
    const big = BigInt(v.toString('latin1', intStart, intStart + intDigits));
    return { sec: neg ? -big - (borrow ? 1n : 0n) : big, nsec };
  }
  // `|| 0`: "-0" is 0 seconds, not -0.
  return { sec: neg ? -sec - (borrow ? 1 : 0) || 0 : sec, nsec };
}

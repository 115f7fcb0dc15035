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
  sec: bigint;
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
  mtime: bigint;
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
function nameField(b: Buffer, off: number, len: number, what: string): string {
  let end = off;
  const max = off + len;
  let ascii = true;
  for (; end < max; end++) {
    const c = b[end]!;
    if (c === 0) break;
    if (c > 0x7f) ascii = false;
  }
  return ascii ? b.toString('latin1', off, end) : decodeName(b.subarray(off, end), what);
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
  return ZERO_BLOCK.compare(b, off, off + BLOCK) === 0;
}

/** The checksum some old tars computed with signed chars. */
function signedChecksum(h: Buffer): number {
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i]!;
    signed += c > 127 ? c - 256 : c;
  }
  return signed;
}

/** Decodes one header block (which must not be all zeros). */
export function decodeHeader(b: Buffer, off = 0): RawHeader {
  const h = b.subarray(off, off + BLOCK);
  const want = parseNumber(h, 148, 8, 'checksum');
  // The checksum field itself counts as eight spaces.
  let unsigned = 8 * 0x20;
  for (let i = 0; i < 148; i++) unsigned += h[i]!;
  for (let i = 156; i < BLOCK; i++) unsigned += h[i]!;
  if (unsigned !== want && signedChecksum(h) !== want)
    throw new ArchiveError(
      `Bad tar header checksum (${want}, computed ${unsigned}): not a tar archive or corrupt`,
    );
  const magic = h.toString('latin1', 257, 263);
  const ustar = magic === 'ustar\0' || magic === 'ustar ';
  let name = nameField(h, 0, 100, 'Entry name');
  if (magic === 'ustar\0' && h[345] !== 0) name = `${nameField(h, 345, 155, 'Entry name prefix')}/${name}`;
  const type = h[156] === 0 ? '0' : String.fromCharCode(h[156]!);
  const size = parseNumber(h, 124, 12, 'size');
  return {
    typeflag: type,
    name,
    linkname: nameField(h, 157, 100, 'Link target'),
    mode: small(parseNumber(h, 100, 8, 'mode'), 0o7777777, 'mode') & 0o7777,
    uid: small(parseNumber(h, 108, 8, 'uid'), 0xfffffffe, 'uid'),
    gid: small(parseNumber(h, 116, 8, 'gid'), 0xfffffffe, 'gid'),
    size: small(size, MAX_SIZE, 'size'),
    mtime: BigInt(parseNumber(h, 136, 12, 'mtime')),
    devmajor: ustar ? small(parseNumber(h, 329, 8, 'devmajor'), 0xfffff, 'devmajor') : 0,
    devminor: ustar ? small(parseNumber(h, 337, 8, 'devminor'), 0xfffff, 'devminor') : 0,
  };
}

/** PAX records: `<len> <key>=<value>\n`, the length counting the whole record. */
export function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < data.length) {
    if (data[off] === 0) break; // some writers pad with NULs
    const sp = data.indexOf(0x20, off);
    if (sp < 0 || sp - off > 20) throw new ArchiveError('Malformed PAX record: no length');
    const lenText = data.toString('latin1', off, sp);
    if (!/^[1-9][0-9]*$/.test(lenText))
      throw new ArchiveError(`Malformed PAX record length ${JSON.stringify(lenText)}`);
    const len = Number(lenText);
    const end = off + len;
    if (end > data.length || end <= sp + 2)
      throw new ArchiveError(`PAX record length ${len} runs past its header`);
    if (data[end - 1] !== 0x0a) throw new ArchiveError('Malformed PAX record: no newline at its end');
    const eq = data.indexOf(0x3d, sp + 1);
    if (eq < 0 || eq >= end - 1 || eq === sp + 1) throw new ArchiveError('Malformed PAX record: no key');
    const key = decodeName(data.subarray(sp + 1, eq), 'PAX key');
    // subarray would pin the whole header; values are small, copy them.
    out.set(key, Buffer.from(data.subarray(eq + 1, end - 1)));
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

/** A PAX time: seconds with an optional fraction, possibly negative. */
export function paxTime(v: Buffer, key: string): Timestamp {
  const s = v.toString('latin1');
  const m = /^(-?)([0-9]{1,19})(?:\.([0-9]{0,18}))?$/.exec(s);
  if (!m) throw new ArchiveError(`Invalid PAX ${key} ${JSON.stringify(s)}`);
  let sec = BigInt(m[2]!);
  let nsec = Number(`${m[3] ?? ''}000000000`.slice(0, 9));
  if (m[1] === '-') {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1n;
      nsec = 1e9 - nsec;
    }
  }
  return { sec, nsec };
}

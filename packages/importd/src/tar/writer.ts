import { ACL_PAX, ACL_XATTR, aclXattrToText } from './acl.js';
import { BLOCK, type EntryType, type TarEntry, type Timestamp } from './header.js';

/**
 * Encodes entries as POSIX pax archives: a ustar header, preceded by a PAX
 * extended header when a value does not fit ustar (long or non-ASCII names,
 * big sizes and ids, sub-second mtimes, xattrs as SCHILY.xattr.* with raw
 * binary values, as GNU tar writes them).
 */

const TYPEFLAG: Record<EntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

export function paddingFor(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** One PAX record; its length prefix counts itself. */
export function paxRecord(key: string, value: Buffer | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value) : value;
  const body = Buffer.byteLength(key) + v.length + 3; // ' ' '=' '\n'
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`), v, Buffer.from('\n')]);
}

function writeString(h: Buffer, off: number, len: number, s: string): boolean {
  const b = Buffer.from(s);
  if (b.length > len) return false;
  b.copy(h, off);
  return true;
}

/** Octal with a NUL terminator, or GNU base-256 when it does not fit. */
function writeNumber(h: Buffer, off: number, len: number, v: bigint): boolean {
  if (v >= 0n && v < 8n ** BigInt(len - 1)) {
    h.write(`${v.toString(8).padStart(len - 1, '0')}\0`, off, 'latin1');
    return true;
  }
  h[off] = 0x80;
  let x = v;
  for (let i = len - 1; i > 0; i--) {
    h[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return false;
}

function formatTime(t: Timestamp): string {
  if (t.nsec === 0) return String(t.sec);
  return `${t.sec}.${String(t.nsec).padStart(9, '0').replace(/0+$/, '')}`;
}

function ustarHeader(e: TarEntry, name: string, typeflag: string, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  writeString(h, 0, 100, name);
  writeNumber(h, 100, 8, BigInt(e.mode & 0o7777));
  writeNumber(h, 108, 8, BigInt(e.uid));
  writeNumber(h, 116, 8, BigInt(e.gid));
  writeNumber(h, 124, 12, BigInt(size));
  const sec = BigInt(e.mtime.sec);
  writeNumber(h, 136, 12, sec < 0n ? 0n : sec);
  h[156] = typeflag.charCodeAt(0);
  writeString(h, 157, 100, typeflag === 'x' ? '' : e.linkname);
  h.write('ustar\x0000', 257, 'latin1');
  writeNumber(h, 329, 8, BigInt(e.devmajor));
  writeNumber(h, 337, 8, BigInt(e.devminor));
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

const ASCII = /^[\x20-\x7e]*$/;

/** The header blocks of one entry (its data and padding follow, written by the caller). */
export function encodeHeader(e: TarEntry): Buffer {
  const records: Buffer[] = [];
  const path = e.type === 'directory' && !e.path.endsWith('/') ? `${e.path}/` : e.path;
  if (Buffer.byteLength(path) > 100 || !ASCII.test(path)) records.push(paxRecord('path', path));
  if (Buffer.byteLength(e.linkname) > 100 || !ASCII.test(e.linkname))
    records.push(paxRecord('linkpath', e.linkname));
  if (e.size >= 8 ** 11) records.push(paxRecord('size', String(e.size)));
  if (e.uid >= 8 ** 7) records.push(paxRecord('uid', String(e.uid)));
  if (e.gid >= 8 ** 7) records.push(paxRecord('gid', String(e.gid)));
  if (e.mtime.nsec !== 0 || e.mtime.sec < 0 || e.mtime.sec >= 8 ** 11)
    records.push(paxRecord('mtime', formatTime(e.mtime)));
  for (const [name, value] of e.xattrs) records.push(xattrRecord(e.path, name, value));
  const main = ustarHeader(e, ASCII.test(path) ? path.slice(0, 100) : '', TYPEFLAG[e.type], e.size);
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  const paxName = `PaxHeaders/${path
    .replace(/\/$/, '')
    .split('/')
    .pop()!
    .replace(/[^\x20-\x7e]/g, '_')}`.slice(0, 99);
  const paxHead = ustarHeader({ ...e, linkname: '', mode: 0o644, uid: 0, gid: 0 }, paxName, 'x', pax.length);
  return Buffer.concat([paxHead, pax, Buffer.alloc(paddingFor(pax.length)), main]);
}

/** An xattr as a PAX record; POSIX ACLs as SCHILY.acl.* text, which GNU tar --acls and star restore. */
function xattrRecord(path: string, name: string, value: Buffer): Buffer {
  for (const kind of ['access', 'default'] as const)
    if (name === ACL_XATTR[kind]) {
      try {
        return paxRecord(ACL_PAX[kind], aclXattrToText(value, JSON.stringify(path)));
      } catch {
        // Not a value we can put in words: it travels as it is.
      }
    }
  return paxRecord(`SCHILY.xattr.${name}`, value);
}

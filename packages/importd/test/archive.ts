import { BLOCK, END_OF_ARCHIVE, encodeHeader, paddingFor, type TarEntry } from '../src/index.js';

/** Builds archives entry by entry, including ones no honest tar would write. */

export type Spec = Partial<TarEntry> & { path: string; data?: Buffer | string };

export function entry(s: Spec): TarEntry {
  const data = s.data === undefined ? undefined : Buffer.from(s.data);
  return {
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: { sec: 1700000000n, nsec: 0 },
    linkname: '',
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
    ...s,
    size: s.size ?? data?.length ?? 0,
  };
}

export function archive(specs: Spec[], end = true): Buffer {
  const parts: Buffer[] = [];
  for (const s of specs) {
    const e = entry(s);
    parts.push(encodeHeader(e));
    if (e.type === 'file' && e.size > 0) {
      const data = Buffer.from(s.data ?? Buffer.alloc(e.size));
      parts.push(data, Buffer.alloc(paddingFor(data.length)));
    }
  }
  if (end) parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/** Rewrites the checksum of the header block at `off` after a test has edited it. */
export function fixChecksum(b: Buffer, off: number): Buffer {
  b.fill(0x20, off + 148, off + 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[off + i]!;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, off + 148, 'latin1');
  return b;
}

/** A raw ustar header with a hand-made size field (base-256 or octal text). */
export function headerWithSize(name: string, size: Buffer): Buffer {
  const b = archive([{ path: name, data: '' }], false);
  size.copy(b, 124, 0, 12);
  return fixChecksum(b, 0);
}

/** A PAX header (type x) with exactly these bytes as its data, then a file entry. */
export function paxThen(paxData: Buffer, name = 'f', data = 'x'): Buffer {
  const head = archive([{ path: 'PaxHeaders/f', data: paxData }], false);
  head[156] = 'x'.charCodeAt(0);
  fixChecksum(head, 0);
  return Buffer.concat([head, archive([{ path: name, data }])]);
}

export async function* chunks(b: Buffer, size = 7777): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

import { crc32 } from '../../src/crc32.js';
import { guidToBytes } from '../../src/guid.js';

/**
 * A small GPT/MBR writer for tests: builds images in memory so that unit and
 * property tests can make valid tables and then break them on purpose.
 */

export interface WriterPartition {
  type: string;
  uuid?: string;
  name?: string;
  /** First and last LBA (inclusive). */
  first: number;
  last: number;
  attrs?: bigint;
}

export interface GptLayout {
  sectorSize: number;
  entryCount: number;
  entrySize: number;
  entrySectors: number;
  sectors: number;
  firstUsable: number;
  lastUsable: number;
}

export function gptLayout(size: number, sectorSize = 512, entryCount = 128, entrySize = 128): GptLayout {
  const sectors = Math.floor(size / sectorSize);
  const entrySectors = Math.ceil((entryCount * entrySize) / sectorSize);
  return {
    sectorSize,
    entryCount,
    entrySize,
    entrySectors,
    sectors,
    firstUsable: 2 + entrySectors,
    lastUsable: sectors - 2 - entrySectors,
  };
}

let counter = 0;
/** A deterministic GUID for tests. */
export function testGuid(seed = ++counter): string {
  const h = seed.toString(16).padStart(12, '0');
  return `5eed0000-0000-4000-8000-${h}`;
}

/** Writes a protective MBR, both headers and both entry arrays. */
export function writeGpt(
  buf: Buffer,
  partitions: WriterPartition[],
  opts: { sectorSize?: number; diskGuid?: string; entryCount?: number; entrySize?: number } = {},
): GptLayout {
  const L = gptLayout(buf.length, opts.sectorSize ?? 512, opts.entryCount ?? 128, opts.entrySize ?? 128);
  const ss = L.sectorSize;
  // Protective MBR.
  const mbr = buf.subarray(0, 512);
  mbr.fill(0, 446, 512);
  mbr[446 + 4] = 0xee;
  mbr.writeUInt32LE(1, 446 + 8);
  mbr.writeUInt32LE(Math.min(L.sectors - 1, 0xffffffff), 446 + 12);
  mbr.writeUInt16LE(0xaa55, 510);
  const entries = Buffer.alloc(L.entryCount * L.entrySize);
  partitions.forEach((p, i) => {
    const e = entries.subarray(i * L.entrySize);
    guidToBytes(p.type).copy(e, 0);
    guidToBytes(p.uuid ?? testGuid()).copy(e, 16);
    e.writeBigUInt64LE(BigInt(p.first), 32);
    e.writeBigUInt64LE(BigInt(p.last), 40);
    e.writeBigUInt64LE(p.attrs ?? 0n, 48);
    e.write((p.name ?? '').slice(0, 36), 56, 'utf16le');
  });
  const diskGuid = opts.diskGuid ?? testGuid();
  const header = (myLba: number, altLba: number, entryLba: number) => {
    const h = Buffer.alloc(ss);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(myLba), 24);
    h.writeBigUInt64LE(BigInt(altLba), 32);
    h.writeBigUInt64LE(BigInt(L.firstUsable), 40);
    h.writeBigUInt64LE(BigInt(L.lastUsable), 48);
    guidToBytes(diskGuid).copy(h, 56);
    h.writeBigUInt64LE(BigInt(entryLba), 72);
    h.writeUInt32LE(L.entryCount, 80);
    h.writeUInt32LE(L.entrySize, 84);
    h.writeUInt32LE(crc32(entries), 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    return h;
  };
  const last = L.sectors - 1;
  header(1, last, 2).copy(buf, ss);
  entries.copy(buf, 2 * ss);
  entries.copy(buf, (last - L.entrySectors) * ss);
  header(last, 1, last - L.entrySectors).copy(buf, last * ss);
  return L;
}

/** Recomputes the header CRC of the GPT header at `lba` (after a deliberate edit). */
export function fixHeaderCrc(buf: Buffer, lba: number, ss = 512): void {
  const h = buf.subarray(lba * ss, lba * ss + 92);
  h.writeUInt32LE(0, 16);
  h.writeUInt32LE(crc32(h), 16);
}

/** Recomputes the entry-array CRC in the header at `lba`, then the header CRC. */
export function fixEntriesCrc(buf: Buffer, lba: number, ss = 512): void {
  const h = buf.subarray(lba * ss, lba * ss + 92);
  const entryLba = Number(h.readBigUInt64LE(72));
  const n = h.readUInt32LE(80) * h.readUInt32LE(84);
  h.writeUInt32LE(crc32(buf.subarray(entryLba * ss, entryLba * ss + n)), 88);
  fixHeaderCrc(buf, lba, ss);
}

export interface MbrEntry {
  type: number;
  start: number;
  count: number;
  bootable?: boolean;
}

export function writeMbr(buf: Buffer, entries: MbrEntry[]): void {
  buf.fill(0, 446, 512);
  entries.forEach((e, i) => {
    const o = 446 + i * 16;
    buf[o] = e.bootable ? 0x80 : 0;
    buf[o + 4] = e.type;
    buf.writeUInt32LE(e.start, o + 8);
    buf.writeUInt32LE(e.count, o + 12);
  });
  buf.writeUInt32LE(0x12345678, 440);
  buf.writeUInt16LE(0xaa55, 510);
}

/** Puts an ext4 superblock signature (and UUID) at `offset`, enough for the probe. */
export function fakeExt4(buf: Buffer, offset: number, uuidHex = '00112233445566778899aabbccddeeff'): void {
  const sb = offset + 1024;
  buf.writeUInt16LE(0xef53, sb + 56);
  buf.writeUInt32LE(0x40, sb + 96); // extents
  Buffer.from(uuidHex, 'hex').copy(buf, sb + 104);
  buf.write('testfs', sb + 120, 'latin1');
}

/** Puts a squashfs magic at `offset`. */
export function fakeSquashfs(buf: Buffer, offset: number): void {
  buf.write('hsqs', offset, 'latin1');
}

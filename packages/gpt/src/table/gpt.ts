import { crc32 } from '../crc32.js';
import { ImageError } from '../errors.js';
import { guidFromBytes } from '../guid.js';
import type { ImageSource } from '../source.js';
import { assertNoOverlap } from './checks.js';
import type { PartitionTable, TableEntry } from './types.js';

/**
 * GPT (UEFI spec, chapter 5): protective MBR, primary header at LBA 1 and its
 * entry array, backup header (normally the last LBA) and its array. Input is
 * hostile: every LBA is checked against the disk before it is used, sizes are
 * bounded before anything is allocated, both CRCs of both headers must match,
 * and the backup must describe the same table as the primary.
 */

const SIGNATURE = 'EFI PART';
const REVISION_1 = 0x00010000;
const MIN_HEADER_SIZE = 92;
const MIN_ENTRY_SIZE = 128;
/** No real table is bigger (the spec's minimum is 16 KiB; 128 entries of 128 bytes). */
export const MAX_ENTRY_ARRAY = 4 * 1024 * 1024;
export const SECTOR_SIZES = [512, 4096] as const;

interface Header {
  where: 'primary' | 'backup';
  myLba: bigint;
  alternateLba: bigint;
  firstUsable: bigint;
  lastUsable: bigint;
  diskGuid: string;
  entryLba: bigint;
  entryCount: number;
  entrySize: number;
  entriesCrc: number;
}

/** The sector size whose LBA 1 holds a GPT signature, or undefined when there is no GPT. */
export function detectGpt(src: ImageSource): number | undefined {
  for (const ss of SECTOR_SIZES) {
    if (src.read(ss, 8).toString('latin1') === SIGNATURE) return ss;
  }
  return undefined;
}

function hasProtectiveMbr(src: ImageSource): boolean {
  const mbr = src.read(0, 512);
  if (mbr.length < 512 || mbr.readUInt16LE(510) !== 0xaa55) return false;
  for (let i = 0; i < 4; i++) if (mbr[446 + i * 16 + 4] === 0xee) return true;
  return false;
}

function lbaText(v: bigint): string {
  return `LBA ${v}`;
}

function parseHeader(
  src: ImageSource,
  ss: number,
  lba: bigint,
  where: Header['where'],
  sectors: bigint,
): Header {
  const what = `${where} GPT header (${lbaText(lba)})`;
  const buf = src.read(Number(lba) * ss, ss);
  if (buf.length < ss) throw new ImageError('TRUNCATED', src.name, `${what}: the file ends inside it`);
  if (buf.toString('latin1', 0, 8) !== SIGNATURE) {
    throw new ImageError('GPT_BACKUP_MISMATCH', src.name, `${what}: no GPT signature there`);
  }
  const invalid = (msg: string) => new ImageError('GPT_HEADER_INVALID', src.name, `${what}: ${msg}`);
  const revision = buf.readUInt32LE(8);
  if (revision >>> 16 !== REVISION_1 >>> 16) throw invalid(`unsupported revision 0x${revision.toString(16)}`);
  const headerSize = buf.readUInt32LE(12);
  if (headerSize < MIN_HEADER_SIZE || headerSize > ss) {
    throw invalid(`header size ${headerSize} is not within ${MIN_HEADER_SIZE}..${ss}`);
  }
  const stored = buf.readUInt32LE(16);
  const copy = Buffer.from(buf.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  const actual = crc32(copy);
  if (actual !== stored) {
    throw new ImageError(
      'GPT_HEADER_CRC',
      src.name,
      `${what}: header CRC32 mismatch (stored 0x${hex32(stored)}, computed 0x${hex32(actual)})`,
    );
  }
  const h: Header = {
    where,
    myLba: buf.readBigUInt64LE(24),
    alternateLba: buf.readBigUInt64LE(32),
    firstUsable: buf.readBigUInt64LE(40),
    lastUsable: buf.readBigUInt64LE(48),
    diskGuid: guidFromBytes(buf, 56),
    entryLba: buf.readBigUInt64LE(72),
    entryCount: buf.readUInt32LE(80),
    entrySize: buf.readUInt32LE(84),
    entriesCrc: buf.readUInt32LE(88),
  };
  if (h.myLba !== lba) throw invalid(`it says it lives at ${lbaText(h.myLba)}`);
  if (h.entrySize < MIN_ENTRY_SIZE || h.entrySize % 8 !== 0 || h.entrySize > 4096) {
    throw invalid(
      `partition entry size ${h.entrySize} is not a multiple of 8 within ${MIN_ENTRY_SIZE}..4096`,
    );
  }
  // Both factors are < 2^32: the product is exact enough to compare with a small bound.
  const arrayBytes = h.entryCount * h.entrySize;
  if (arrayBytes > MAX_ENTRY_ARRAY) {
    throw invalid(
      `${h.entryCount} partition entries of ${h.entrySize} bytes (${arrayBytes} bytes) exceed the ${MAX_ENTRY_ARRAY}-byte limit`,
    );
  }
  const beyond = (field: string, v: bigint) =>
    new ImageError(
      'TRUNCATED',
      src.name,
      `${what}: ${field} ${lbaText(v)} lies beyond the end of the image (${sectors} sectors of ${ss} bytes): truncated file?`,
    );
  if (h.alternateLba >= sectors) throw beyond('the other header at', h.alternateLba);
  if (h.lastUsable >= sectors) throw beyond('the last usable sector', h.lastUsable);
  if (h.firstUsable > h.lastUsable + 1n || h.firstUsable < 2n) {
    throw invalid(`usable area ${lbaText(h.firstUsable)}..${lbaText(h.lastUsable)} is empty or impossible`);
  }
  const arraySectors = BigInt(Math.ceil(arrayBytes / ss));
  const arrayEnd = h.entryLba + arraySectors; // exclusive
  if (arrayEnd > sectors) throw beyond('the partition entry array ending at', arrayEnd - 1n);
  if (where === 'primary') {
    if (h.entryLba < 2n || arrayEnd > h.firstUsable) {
      throw invalid(`partition entry array at ${lbaText(h.entryLba)} overlaps the header or the usable area`);
    }
    if (h.alternateLba <= h.lastUsable) throw invalid('the backup header lies inside the usable area');
  } else if (h.entryLba <= h.lastUsable || arrayEnd > h.myLba) {
    throw invalid(`partition entry array at ${lbaText(h.entryLba)} overlaps the usable area or the header`);
  }
  return h;
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function readEntries(src: ImageSource, ss: number, h: Header): Buffer {
  const bytes = h.entryCount * h.entrySize;
  const what = `${h.where} GPT partition entry array (${lbaText(h.entryLba)})`;
  const buf = src.read(Number(h.entryLba) * ss, bytes);
  if (buf.length < bytes) throw new ImageError('TRUNCATED', src.name, `${what}: the file ends inside it`);
  const actual = crc32(buf);
  if (actual !== h.entriesCrc) {
    throw new ImageError(
      'GPT_ENTRIES_CRC',
      src.name,
      `${what}: CRC32 mismatch (header says 0x${hex32(h.entriesCrc)}, computed 0x${hex32(actual)})`,
    );
  }
  return buf;
}

function compareHeaders(src: ImageSource, p: Header, b: Header): void {
  const diffs: string[] = [];
  if (b.alternateLba !== p.myLba)
    diffs.push(`it points back to ${lbaText(b.alternateLba)}, not ${lbaText(p.myLba)}`);
  if (b.diskGuid !== p.diskGuid) diffs.push(`disk GUID ${b.diskGuid} vs ${p.diskGuid}`);
  if (b.firstUsable !== p.firstUsable || b.lastUsable !== p.lastUsable) {
    diffs.push(`usable area ${b.firstUsable}..${b.lastUsable} vs ${p.firstUsable}..${p.lastUsable}`);
  }
  if (b.entryCount !== p.entryCount || b.entrySize !== p.entrySize) {
    diffs.push(`${b.entryCount} entries of ${b.entrySize} bytes vs ${p.entryCount} of ${p.entrySize}`);
  }
  if (b.entriesCrc !== p.entriesCrc) diffs.push('the partition entries differ');
  if (diffs.length) {
    throw new ImageError(
      'GPT_BACKUP_MISMATCH',
      src.name,
      `the backup GPT header (${lbaText(b.myLba)}) disagrees with the primary: ${diffs.join('; ')}`,
    );
  }
}

function decodeName(buf: Buffer, offset: number): string {
  const raw = buf.subarray(offset, offset + 72);
  let end = 0;
  while (end + 1 < raw.length && (raw[end] !== 0 || raw[end + 1] !== 0)) end += 2;
  return raw.toString('utf16le', 0, end);
}

/**
 * Reads the GPT of an image, or returns undefined when it has none.
 * Throws ImageError naming the problem when a GPT is there but wrong.
 */
export function readGpt(src: ImageSource): PartitionTable | undefined {
  const ss = detectGpt(src);
  if (ss === undefined) return undefined;
  if (!hasProtectiveMbr(src)) {
    throw new ImageError(
      'GPT_NO_PROTECTIVE_MBR',
      src.name,
      'a GPT header is present but sector 0 holds no protective MBR (type 0xEE)',
    );
  }
  const sectors = BigInt(Math.floor(src.size / ss));
  if (sectors < 4n)
    throw new ImageError('TRUNCATED', src.name, `only ${sectors} sectors: too small for a GPT`);
  const primary = parseHeader(src, ss, 1n, 'primary', sectors);
  const entries = readEntries(src, ss, primary);
  const backup = parseHeader(src, ss, primary.alternateLba, 'backup', sectors);
  compareHeaders(src, primary, backup);
  const backupEntries = readEntries(src, ss, backup);
  if (!backupEntries.equals(entries)) {
    // Same CRC, different bytes: only a deliberate collision gets here.
    throw new ImageError(
      'GPT_BACKUP_MISMATCH',
      src.name,
      'the backup partition entries differ from the primary',
    );
  }
  const warnings: string[] = [];
  if (primary.alternateLba !== sectors - 1n) {
    warnings.push(
      `the backup GPT header is at ${lbaText(primary.alternateLba)}, not at the last sector (${sectors - 1n}): the image was grown?`,
    );
  }
  const out: TableEntry[] = [];
  const extents = [];
  for (let i = 0; i < primary.entryCount; i++) {
    const off = i * primary.entrySize;
    const e = entries.subarray(off, off + primary.entrySize);
    const typeGuid = guidFromBytes(e, 0);
    if (typeGuid === '00000000-0000-0000-0000-000000000000') continue;
    const number = i + 1;
    const first = e.readBigUInt64LE(32);
    const last = e.readBigUInt64LE(40);
    if (last < first) {
      throw new ImageError(
        'PARTITION_OUT_OF_RANGE',
        src.name,
        `partition ${number} ends (${lbaText(last)}) before it starts (${lbaText(first)})`,
      );
    }
    if (last >= sectors) {
      throw new ImageError(
        'PARTITION_OUT_OF_RANGE',
        src.name,
        `partition ${number} (${lbaText(first)}..${last}) extends beyond the end of the disk (${sectors} sectors)`,
      );
    }
    if (first < primary.firstUsable || last > primary.lastUsable) {
      throw new ImageError(
        'PARTITION_OUT_OF_RANGE',
        src.name,
        `partition ${number} (${lbaText(first)}..${last}) lies outside the usable area ${primary.firstUsable}..${primary.lastUsable}`,
      );
    }
    extents.push({ number, first, last });
    out.push({
      number,
      start: Number(first) * ss,
      size: Number(last - first + 1n) * ss,
      typeGuid,
      uuid: guidFromBytes(e, 16),
      name: decodeName(e, 56),
      attributes: e.readBigUInt64LE(48),
    });
  }
  assertNoOverlap(src.name, extents, 'LBA');
  return { kind: 'gpt', sectorSize: ss, diskGuid: primary.diskGuid, entries: out, warnings };
}

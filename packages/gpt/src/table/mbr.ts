import { ImageError } from '../errors.js';
import type { ImageSource } from '../source.js';
import { assertNoOverlap } from './checks.js';
import type { Extent, PartitionTable, TableEntry } from './types.js';

/**
 * The classic MBR: four primary entries in sector 0. Logical partitions in an
 * extended partition are listed as the extended entry only (no DPS role can
 * come from them). Sector 0 of a FAT file system also ends in 0x55AA: the
 * caller probes for a file system first.
 */

const SECTOR = 512;
const EXTENDED = new Set([0x05, 0x0f, 0x85]);

export function readMbr(src: ImageSource): PartitionTable | undefined {
  const s = src.read(0, SECTOR);
  if (s.length < SECTOR || s.readUInt16LE(510) !== 0xaa55) return undefined;
  const raw = [0, 1, 2, 3].map((i) => s.subarray(446 + i * 16, 462 + i * 16));
  // Boot indicators other than 0x00/0x80 mean this is boot code, not a table (as libblkid decides).
  if (raw.some((e) => e[0] !== 0 && e[0] !== 0x80)) return undefined;
  if (raw.every((e) => e[4] === 0)) return undefined;
  if (raw.some((e) => e[4] === 0xee)) {
    throw new ImageError(
      'GPT_HEADER_INVALID',
      src.name,
      'sector 0 holds a protective MBR (type 0xEE) but there is no GPT header at LBA 1',
    );
  }
  const sectors = BigInt(Math.floor(src.size / SECTOR));
  const entries: TableEntry[] = [];
  const extents: Extent[] = [];
  const warnings: string[] = [];
  raw.forEach((e, i) => {
    const type = e[4]!;
    if (type === 0) return;
    const number = i + 1;
    const first = BigInt(e.readUInt32LE(8));
    const count = BigInt(e.readUInt32LE(12));
    if (first === 0n || count === 0n) {
      throw new ImageError(
        'MBR_INVALID',
        src.name,
        `MBR partition ${number} (type 0x${hex(type)}) starts at sector ${first} with ${count} sectors`,
      );
    }
    const last = first + count - 1n;
    if (last >= sectors) {
      throw new ImageError(
        'PARTITION_OUT_OF_RANGE',
        src.name,
        `MBR partition ${number} (sectors ${first}..${last}) extends beyond the end of the disk (${sectors} sectors)`,
      );
    }
    if (EXTENDED.has(type))
      warnings.push(`partition ${number} is an extended partition: logical partitions are not read`);
    extents.push({ number, first, last });
    entries.push({
      number,
      start: Number(first) * SECTOR,
      size: Number(count) * SECTOR,
      mbrType: type,
      bootable: e[0] === 0x80,
    });
  });
  assertNoOverlap(src.name, extents, 'sectors');
  return {
    kind: 'mbr',
    sectorSize: SECTOR,
    diskSignature: s.readUInt32LE(440).toString(16).padStart(8, '0'),
    entries,
    warnings,
  };
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}

import { type DpsArch, decodePartitionFlags, hostDpsArch, partitionTypeFromGuid } from '../dps.js';
import { ImageError } from '../errors.js';
import { probeFilesystem } from '../probe/probe.js';
import { type ImageSource, withFileSource } from '../source.js';
import { readGpt } from '../table/gpt.js';
import { readMbr } from '../table/mbr.js';
import type { PartitionTable, TableEntry } from '../table/types.js';
import type { DissectedImage, DissectedPartition, Role } from './model.js';

/**
 * Applies the Discoverable Partitions Specification to a partition table (or
 * a bare file system): which partition is root, /usr, /home... The rules are
 * systemd's: root and usr only for our architecture, the newest version (by
 * partition label) wins among several of them, the first one wins for the
 * other roles, no-auto partitions are skipped (except the ESP, where the bit
 * is not defined), and without a root the fallbacks apply: a single
 * Linux-generic GPT partition, a bootable MBR partition of type 0x83, a file
 * system on the whole image.
 */

export interface DissectOptions {
  /** The architecture to look for root/usr of; the host's by default. */
  arch?: DpsArch;
}

const MBR_LINUX = 0x83;
const MBR_XBOOTLDR = 0xea;

/** Compares version-like labels the way strverscmp does: digit runs as numbers. */
export function compareVersions(a: string, b: string): number {
  const split = (s: string) => s.match(/\d+|\D+/g) ?? [];
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i]!;
    const q = y[i]!;
    if (p === q) continue;
    if (/^\d/.test(p) && /^\d/.test(q)) {
      const d = BigInt(p) - BigInt(q);
      if (d !== 0n) return d < 0n ? -1 : 1;
      continue;
    }
    return p < q ? -1 : 1;
  }
  return x.length - y.length;
}

function basePartition(e: TableEntry, src: ImageSource): DissectedPartition {
  const p: DissectedPartition = {
    number: e.number,
    offset: e.start,
    size: e.size,
    flags: decodePartitionFlags(e.attributes ?? 0n),
  };
  if (e.typeGuid !== undefined) p.typeGuid = e.typeGuid;
  if (e.uuid !== undefined) p.uuid = e.uuid;
  if (e.name !== undefined && e.name !== '') p.label = e.name;
  if (e.attributes !== undefined) p.attributes = e.attributes.toString(16).padStart(16, '0');
  if (e.mbrType !== undefined) p.mbrType = e.mbrType;
  if (e.bootable !== undefined) p.bootable = e.bootable;
  const fs = probeFilesystem(src, e.start, e.size);
  if (fs) p.fs = fs;
  return p;
}

function assignGpt(img: DissectedImage, arch: DpsArch | undefined): void {
  const generic: DissectedPartition[] = [];
  for (const p of img.partitions) {
    const t = p.typeGuid === undefined ? undefined : partitionTypeFromGuid(p.typeGuid);
    if (!t) {
      p.ignored = 'partition type not defined by the Discoverable Partitions Specification';
      continue;
    }
    p.designator = t.designator;
    p.typeName = t.name;
    if (t.arch) p.arch = t.arch;
    if (t.arch && t.arch !== arch) {
      p.ignored = `for another architecture (${t.arch})`;
      continue;
    }
    if (p.flags.noAuto && t.designator !== 'esp') {
      p.ignored = 'marked no-auto (GPT attribute bit 63)';
      continue;
    }
    if (t.designator === 'user-home') {
      p.ignored = 'a systemd-homed home area';
      continue;
    }
    if (t.designator === 'linux-generic') {
      generic.push(p);
      continue;
    }
    const role: Role = t.designator;
    const held = img.roles[role];
    if (held) {
      // root and usr (and their verity companions): the newest version by label wins.
      const versioned = p.arch !== undefined;
      const newer = versioned && compareVersions(p.label ?? '', held.label ?? '') > 0;
      if (!newer) {
        p.ignored = `partition ${held.number} is the ${role} partition already`;
        continue;
      }
      delete held.role;
      held.ignored = `partition ${p.number} is a newer ${role} partition (by label)`;
    }
    p.role = role;
    img.roles[role] = p;
  }
  if (img.roles.root || img.roles.usr) {
    for (const g of generic)
      g.ignored = 'Linux-generic partitions are only used when there is no root partition';
    return;
  }
  if (generic.length === 1) {
    generic[0]!.role = 'root';
    img.roles.root = generic[0]!;
  } else if (generic.length > 1) {
    for (const g of generic)
      g.ignored = 'one of several Linux-generic partitions: none can be chosen as root';
    img.unusable = {
      code: 'NOT_UNIQUE',
      message: `no root partition for ${arch ?? 'this architecture'} and ${generic.length} Linux-generic partitions (${generic.map((g) => g.number).join(', ')}): which one is root is ambiguous`,
    };
  }
}

function assignMbr(img: DissectedImage): void {
  const linux = img.partitions.filter((p) => p.mbrType === MBR_LINUX && p.bootable);
  for (const p of img.partitions) {
    if (p.mbrType === MBR_LINUX && !p.bootable) p.ignored = 'type 0x83 but not marked bootable';
    else if (p.mbrType === MBR_XBOOTLDR && !img.roles.xbootldr) {
      p.role = 'xbootldr';
      p.designator = 'xbootldr';
      img.roles.xbootldr = p;
    } else if (p.mbrType !== MBR_LINUX) {
      p.ignored = `MBR type 0x${p.mbrType?.toString(16).padStart(2, '0')} has no role`;
    }
  }
  if (linux.length === 1) {
    linux[0]!.role = 'root';
    img.roles.root = linux[0]!;
  } else if (linux.length > 1) {
    for (const p of linux) p.ignored = 'one of several bootable 0x83 partitions';
    img.unusable = {
      code: 'NOT_UNIQUE',
      message: `${linux.length} bootable MBR partitions of type 0x83 (${linux.map((p) => p.number).join(', ')}): which one is root is ambiguous`,
    };
  }
}

function noRootMessage(img: DissectedImage): string {
  if (img.roles.usr)
    return 'only a /usr partition and no root partition: /usr-only images cannot be mounted yet';
  if (img.table === 'gpt') {
    return `no root partition for ${img.arch ?? 'this architecture'} (type root-${img.arch}) and no single Linux-generic partition`;
  }
  return 'no bootable MBR partition of type 0x83';
}

/** Dissects the image read through `src`. Throws ImageError when the table or image is broken. */
export function dissectSource(src: ImageSource, options: DissectOptions = {}): DissectedImage {
  const arch = options.arch ?? hostDpsArch();
  const base = { image: src.name, size: src.size, arch, roles: {}, warnings: [] };
  let table: PartitionTable | undefined = readGpt(src);
  // A FAT boot sector ends in 0x55AA as an MBR does: a file system at 0 means no MBR.
  const whole = table ? undefined : probeFilesystem(src);
  if (!table && (!whole || whole.type === 'swap')) table = readMbr(src);
  if (!table) {
    if (!whole) {
      if (src.size === 0) throw new ImageError('TRUNCATED', src.name, 'the image is empty');
      throw new ImageError(
        'NO_TABLE',
        src.name,
        'neither a partition table (GPT, MBR) nor a file system was recognised',
      );
    }
    const p: DissectedPartition = {
      number: null,
      offset: 0,
      size: src.size,
      flags: { readOnly: false, noAuto: false, growFs: false },
      fs: whole,
    };
    const img: DissectedImage = { ...base, sectorSize: 512, table: 'none', partitions: [p] };
    if (whole.type === 'swap') p.role = 'swap';
    else p.role = 'root';
    img.roles[p.role] = p;
    if (p.role !== 'root') img.unusable = { code: 'NO_ROOT', message: 'the image holds swap space only' };
    return img;
  }
  const img: DissectedImage = {
    ...base,
    sectorSize: table.sectorSize,
    table: table.kind,
    partitions: table.entries.map((e) => basePartition(e, src)),
    warnings: [...table.warnings],
  };
  if (table.diskGuid) img.diskGuid = table.diskGuid;
  if (table.diskSignature) img.diskSignature = table.diskSignature;
  if (table.kind === 'gpt') assignGpt(img, arch);
  else assignMbr(img);
  if (!img.roles.root && !img.unusable) img.unusable = { code: 'NO_ROOT', message: noRootMessage(img) };
  if (img.roles['root-verity'] || img.roles['usr-verity']) {
    img.warnings.push(
      'dm-verity is not supported yet: verity partitions are not used (data is not verified)',
    );
  }
  return img;
}

/** Dissects the image file (or block device) at `path`. */
export function dissectImage(path: string, options: DissectOptions = {}): DissectedImage {
  return withFileSource(path, (src) => dissectSource(src, options));
}

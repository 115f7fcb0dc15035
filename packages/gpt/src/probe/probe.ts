import type { ImageSource } from '../source.js';

/**
 * What a partition (or a whole image) holds, told from its superblock alone,
 * like libblkid does: the file system type, its UUID and label. LUKS and
 * dm-verity hash data are recognised so that they can be refused by name.
 */

export type FsType =
  | 'ext2'
  | 'ext3'
  | 'ext4'
  | 'btrfs'
  | 'xfs'
  | 'vfat'
  | 'squashfs'
  | 'erofs'
  | 'swap'
  | 'crypto_LUKS'
  | 'DM_verity_hash';

export interface FsProbe {
  /** The type as blkid and mount(2) name it. */
  type: FsType;
  uuid?: string;
  label?: string;
  /** For LUKS: 1 or 2. */
  version?: number;
}

/** File systems that can only be mounted read-only. */
export const READ_ONLY_FS: ReadonlySet<FsType> = new Set(['squashfs', 'erofs']);
/** Types that are not file systems to mount. */
export const NOT_MOUNTABLE: ReadonlySet<FsType> = new Set(['swap', 'crypto_LUKS', 'DM_verity_hash']);

/** The bytes a probe looks at: btrfs' superblock ends at 68 KiB, swap's signature at up to 64 KiB. */
const PROBE_BYTES = 0x11000;

function uuidText(b: Buffer, off: number): string | undefined {
  const u = b.subarray(off, off + 16);
  if (u.length < 16 || u.every((x) => x === 0)) return undefined;
  const h = u.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function cString(b: Buffer, off: number, len: number, encoding: BufferEncoding = 'utf8'): string | undefined {
  const raw = b.subarray(off, off + len);
  const nul = raw.indexOf(0);
  const s = raw.toString(encoding, 0, nul < 0 ? raw.length : nul).trim();
  return s === '' ? undefined : s;
}

function ext(b: Buffer): FsProbe | undefined {
  const sb = 1024;
  if (b.length < sb + 256 || b.readUInt16LE(sb + 56) !== 0xef53) return undefined;
  const compat = b.readUInt32LE(sb + 92);
  const incompat = b.readUInt32LE(sb + 96);
  const roCompat = b.readUInt32LE(sb + 100);
  // A journal device is not a file system of its own.
  if (incompat & 0x8) return undefined;
  // Features ext3 does not know make it ext4: extents, 64bit, flex_bg, huge_file, gdt_csum, dir_nlink, extra_isize...
  const ext4 = (incompat & ~0x001f) !== 0 || (roCompat & ~0x0007) !== 0;
  const type: FsType = ext4 ? 'ext4' : compat & 0x4 ? 'ext3' : 'ext2';
  return { type, uuid: uuidText(b, sb + 104), label: cString(b, sb + 120, 16) };
}

function btrfs(b: Buffer): FsProbe | undefined {
  const sb = 0x10000;
  if (b.length < sb + 0x1000 || b.toString('latin1', sb + 64, sb + 72) !== '_BHRfS_M') return undefined;
  return { type: 'btrfs', uuid: uuidText(b, sb + 32), label: cString(b, sb + 0x12b, 256) };
}

function xfs(b: Buffer): FsProbe | undefined {
  if (b.length < 512 || b.toString('latin1', 0, 4) !== 'XFSB') return undefined;
  return { type: 'xfs', uuid: uuidText(b, 32), label: cString(b, 108, 12) };
}

function vfat(b: Buffer): FsProbe | undefined {
  if (b.length < 512 || b.readUInt16LE(510) !== 0xaa55) return undefined;
  const bytesPerSector = b.readUInt16LE(11);
  const sectorsPerCluster = b[13]!;
  if (![512, 1024, 2048, 4096].includes(bytesPerSector) || sectorsPerCluster === 0) return undefined;
  if ((sectorsPerCluster & (sectorsPerCluster - 1)) !== 0 || b.readUInt16LE(14) === 0 || b[16] === 0)
    return undefined;
  let serialAt: number;
  let labelAt: number;
  if (b.toString('latin1', 82, 87) === 'FAT32') {
    serialAt = 67;
    labelAt = 71;
  } else if (b.toString('latin1', 54, 57) === 'FAT' || b.toString('latin1', 54, 59) === 'MSWIN') {
    serialAt = 39;
    labelAt = 43;
  } else return undefined;
  const serial = b.readUInt32LE(serialAt).toString(16).toUpperCase().padStart(8, '0');
  const label = cString(b, labelAt, 11, 'latin1');
  return {
    type: 'vfat',
    uuid: `${serial.slice(0, 4)}-${serial.slice(4)}`,
    ...(label && label !== 'NO NAME' ? { label } : {}),
  };
}

function squashfs(b: Buffer): FsProbe | undefined {
  if (b.length < 96 || b.toString('latin1', 0, 4) !== 'hsqs') return undefined;
  return { type: 'squashfs' };
}

function erofs(b: Buffer): FsProbe | undefined {
  const sb = 1024;
  if (b.length < sb + 128 || b.readUInt32LE(sb) !== 0xe0f5e1e2) return undefined;
  return { type: 'erofs', uuid: uuidText(b, sb + 48), label: cString(b, sb + 64, 16) };
}

function swap(b: Buffer): FsProbe | undefined {
  for (const page of [4096, 8192, 16384, 65536]) {
    if (b.length < page) break;
    const sig = b.toString('latin1', page - 10, page);
    if (sig === 'SWAPSPACE2' || sig === 'SWAP-SPACE') {
      return { type: 'swap', uuid: uuidText(b, 1024 + 12), label: cString(b, 1024 + 28, 16) };
    }
  }
  return undefined;
}

function luks(b: Buffer): FsProbe | undefined {
  if (b.length < 512) return undefined;
  const magic = b.subarray(0, 6).toString('hex');
  if (magic !== '4c554b53babe' && magic !== '534b554cbabe') return undefined;
  const version = b.readUInt16BE(6);
  return {
    type: 'crypto_LUKS',
    version,
    uuid: cString(b, 168, 40, 'latin1'),
    ...(version === 2 && cString(b, 24, 48) ? { label: cString(b, 24, 48) } : {}),
  };
}

function verity(b: Buffer): FsProbe | undefined {
  if (b.length < 512 || b.toString('latin1', 0, 8) !== 'verity\0\0') return undefined;
  return { type: 'DM_verity_hash', uuid: uuidText(b, 16) };
}

// Order matters where signatures can coexist: LUKS and verity headers sit at
// 0, xfs/squashfs/vfat at 0 too; ext/erofs at 1 KiB; btrfs at 64 KiB.
const PROBES = [luks, verity, xfs, squashfs, erofs, ext, btrfs, swap, vfat];

/** Probes `size` bytes at `offset` of the source; undefined when nothing is recognised. */
export function probeFilesystem(src: ImageSource, offset = 0, size = src.size - offset): FsProbe | undefined {
  const b = src.read(offset, Math.max(0, Math.min(PROBE_BYTES, size)));
  for (const p of PROBES) {
    const r = p(b);
    if (r) {
      // Drop keys whose value is undefined: the model stays plain JSON.
      return Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as FsProbe;
    }
  }
  return undefined;
}

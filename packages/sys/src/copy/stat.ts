import { AT, S_IF } from '../constants.js';
import { check, lazyFunc } from '../ffi/libc.js';
import { assertValidPath } from '../fs/at.js';

/**
 * statx(2) with everything a copy or an image listing needs (times, birth
 * time, blocks, attributes), and fstatfs(2) for the file system type.
 */

const c = {
  statx: lazyFunc('statx', 'int', ['int', 'str', 'int', 'uint32_t', 'uint8_t *']),
  fstatfs: lazyFunc('fstatfs', 'int', ['int', 'uint8_t *']),
};

export const STATX_MASK = {
  TYPE: 0x1,
  INO: 0x100,
  BASIC_STATS: 0x7ff,
  BTIME: 0x800,
  MNT_ID: 0x1000,
} as const;

export const STATX_ATTR = {
  COMPRESSED: 0x4,
  IMMUTABLE: 0x10,
  APPEND: 0x20,
  NODUMP: 0x40,
  AUTOMOUNT: 0x1000,
  MOUNT_ROOT: 0x2000,
  VERITY: 0x100000,
} as const;

/** A point in time as the kernel keeps it. */
export interface Timespec {
  sec: bigint;
  nsec: number;
}

export interface FullStat {
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  ino: bigint;
  size: bigint;
  /** 512-byte blocks allocated. */
  blocks: bigint;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  /** Birth time; undefined when the file system does not record it. */
  btime: Timespec | undefined;
  /** STATX_ATTR_* bits the kernel reported (immutable, append...). */
  attributes: bigint;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
}

const ts = (b: Buffer, at: number): Timespec => ({ sec: b.readBigInt64LE(at), nsec: b.readUInt32LE(at + 8) });

/** Microseconds since the epoch, the unit of systemd's timestamps. */
export function timespecToUsec(t: Timespec): bigint {
  return t.sec * 1_000_000n + BigInt(Math.floor(t.nsec / 1000));
}

/**
 * statx(2) of `path` at `dirfd` with AT flags (AT.SYMLINK_NOFOLLOW,
 * AT.EMPTY_PATH with '' for the fd itself). The buffer may be reused by
 * passing one of 256 bytes (hot loops).
 */
export function statxFull(dirfd: number, path: string, flags = 0, buf: Buffer = Buffer.alloc(256)): FullStat {
  assertValidPath(path, 'path', true);
  check(
    'statx',
    c.statx(dirfd, path, flags, STATX_MASK.BASIC_STATS | STATX_MASK.BTIME, buf),
    path || undefined,
  );
  return decodeStatx(buf);
}

/**
 * Whether the open `fd` is still the regular file `st` described (type,
 * inode, device): a copy's check after its open, one statx asking for
 * little, into `buf`, read for these fields only.
 */
export function isSameRegularFile(fd: number, st: FullStat, buf: Buffer): boolean {
  check('statx', c.statx(fd, '', AT.EMPTY_PATH, STATX_MASK.TYPE | STATX_MASK.INO, buf));
  return (
    (buf.readUInt16LE(28) & S_IF.MT) === S_IF.REG &&
    buf.readBigUInt64LE(32) === st.ino &&
    buf.readUInt32LE(136) === st.devMajor &&
    buf.readUInt32LE(140) === st.devMinor
  );
}

/** statx without throwing: the errno (>0) on failure. */
export function tryStatxFull(dirfd: number, path: string, flags = 0): FullStat | undefined {
  const buf = Buffer.alloc(256);
  if (c.statx(dirfd, path, flags, STATX_MASK.BASIC_STATS | STATX_MASK.BTIME, buf) < 0) return undefined;
  return decodeStatx(buf);
}

export function decodeStatx(b: Buffer): FullStat {
  const mask = b.readUInt32LE(0);
  return {
    mode: b.readUInt16LE(28),
    uid: b.readUInt32LE(20),
    gid: b.readUInt32LE(24),
    nlink: b.readUInt32LE(16),
    ino: b.readBigUInt64LE(32),
    size: b.readBigUInt64LE(40),
    blocks: b.readBigUInt64LE(48),
    attributes: b.readBigUInt64LE(8),
    atime: ts(b, 64),
    btime: mask & STATX_MASK.BTIME ? ts(b, 80) : undefined,
    ctime: ts(b, 96),
    mtime: ts(b, 112),
    rdevMajor: b.readUInt32LE(128),
    rdevMinor: b.readUInt32LE(132),
    devMajor: b.readUInt32LE(136),
    devMinor: b.readUInt32LE(140),
  };
}

/** Magic numbers of statfs.f_type that the image code cares about. */
export const FS_MAGIC = {
  BTRFS: 0x9123683e,
  EXT4: 0xef53,
  TMPFS: 0x01021994,
  XFS: 0x58465342,
  OVERLAYFS: 0x794c7630,
  SQUASHFS: 0x73717368,
} as const;

export const ST = { RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8 } as const;

export interface FsStat {
  /** f_type: the file system's magic number (FS_MAGIC). */
  type: number;
  blockSize: number;
  blocks: bigint;
  blocksFree: bigint;
  blocksAvailable: bigint;
  /** ST.* mount flags (ST.RDONLY...). */
  flags: number;
}

/** fstatfs(2) of an open fd (O_PATH fds work). */
export function fstatfs(fd: number, path?: string): FsStat {
  const b = Buffer.alloc(120);
  check('fstatfs', c.fstatfs(fd, b), path);
  return {
    type: Number(b.readBigInt64LE(0)) >>> 0,
    blockSize: Number(b.readBigInt64LE(8)),
    blocks: b.readBigUInt64LE(16),
    blocksFree: b.readBigUInt64LE(24),
    blocksAvailable: b.readBigUInt64LE(32),
    flags: Number(b.readBigInt64LE(80)),
  };
}

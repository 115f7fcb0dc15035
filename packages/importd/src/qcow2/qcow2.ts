import { fstatSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { ftruncate, SdError } from '@sd/sys';
import { writeSyncErrno } from '../io.js';

/**
 * qcow2 → raw, as systemd's importd does for pull-raw and import-raw: the
 * image is read through its L1/L2 tables and every allocated cluster is
 * written at its guest offset; unallocated and zero clusters stay holes.
 * Plain and deflate-compressed clusters; no encryption, backing files,
 * external data files, extended L2 entries or zstd clusters (refused by
 * name). Every header field and table entry is checked against the file:
 * the input is hostile.
 */

export class Qcow2Error extends SdError {
  constructor(message: string, options?: ErrorOptions) {
    super('EBADMSG', `qcow2: ${message}`, options);
  }
}

const MAGIC = 0x514649fb; // "QFI\xfb"
const OFFSET_MASK = 0x00fffffffffffe00n; // bits 9-55
const COPIED = 1n << 63n;
const COMPRESSED = 1n << 62n;
const ZERO = 1n;
/** qemu's own limits: 2 MiB clusters, a 32 MiB L1 table. */
const MAX_CLUSTER_BITS = 21;
const MIN_CLUSTER_BITS = 9;
const MAX_L1_BYTES = 32 * 1024 * 1024;
/** Virtual sizes beyond this are not disks we import (and keep offsets exact in doubles). */
const MAX_SIZE = 2 ** 52;
const INCOMPAT = { dirty: 1n, corrupt: 2n, externalData: 4n, compressionType: 8n, extendedL2: 16n };

export function isQcow2(head: Buffer): boolean {
  return head.length >= 4 && head.readUInt32BE(0) === MAGIC;
}

export interface Qcow2Header {
  version: number;
  clusterBits: number;
  size: number;
  l1Size: number;
  l1Offset: number;
}

function pread(fd: number, len: number, pos: number): Buffer {
  const b = Buffer.alloc(len);
  let off = 0;
  while (off < len) {
    const n = readSync(fd, b, off, len - off, pos + off);
    if (n === 0) break;
    off += n;
  }
  if (off < len) throw new Qcow2Error(`${len} bytes at offset ${pos} run past the end of the file`);
  return b;
}

const num = (v: bigint, what: string): number => {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Qcow2Error(`${what} ${v} is out of range`);
  return Number(v);
};

/** Parses and checks the header of the qcow2 file open at `fd` (`fileSize` bytes). */
export function readHeader(fd: number, fileSize: number): Qcow2Header {
  if (fileSize < 72) throw new Qcow2Error('the file is too short for a header');
  const h = pread(fd, Math.min(fileSize, 112), 0);
  if (h.readUInt32BE(0) !== MAGIC) throw new Qcow2Error('no qcow2 magic');
  const version = h.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw new Qcow2Error(`version ${version} is not supported`);
  if (h.readBigUInt64BE(8) !== 0n || h.readUInt32BE(16) !== 0)
    throw new Qcow2Error('images with a backing file are not supported');
  const clusterBits = h.readUInt32BE(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS)
    throw new Qcow2Error(`cluster_bits ${clusterBits} is out of range`);
  const size = num(h.readBigUInt64BE(24), 'size');
  if (size > MAX_SIZE) throw new Qcow2Error(`the virtual size ${size} is too large`);
  if (h.readUInt32BE(32) !== 0) throw new Qcow2Error('encrypted images are not supported');
  const l1Size = h.readUInt32BE(36);
  const l1Offset = num(h.readBigUInt64BE(40), 'l1_table_offset');
  if (version === 3) {
    if (h.length < 104) throw new Qcow2Error('the file is too short for a version 3 header');
    const incompat = h.readBigUInt64BE(72);
    const known =
      INCOMPAT.dirty |
      INCOMPAT.corrupt |
      INCOMPAT.externalData |
      INCOMPAT.compressionType |
      INCOMPAT.extendedL2;
    if (incompat & ~known) throw new Qcow2Error(`unknown incompatible features 0x${incompat.toString(16)}`);
    if (incompat & INCOMPAT.corrupt) throw new Qcow2Error('the image is marked corrupt');
    if (incompat & INCOMPAT.externalData)
      throw new Qcow2Error('images with an external data file are not supported');
    if (incompat & INCOMPAT.extendedL2) throw new Qcow2Error('extended L2 entries are not supported');
    if (incompat & INCOMPAT.compressionType)
      throw new Qcow2Error('compression types other than deflate are not supported');
    const headerLength = h.readUInt32BE(100);
    if (headerLength < 104 || headerLength > fileSize)
      throw new Qcow2Error(`header_length ${headerLength} is invalid`);
  }
  const cluster = 2 ** clusterBits;
  const perL2 = cluster / 8;
  const needL1 = Math.ceil(size / (cluster * perL2));
  if (l1Size < needL1) throw new Qcow2Error(`l1_size ${l1Size} is too small for ${size} bytes`);
  if (l1Size * 8 > MAX_L1_BYTES) throw new Qcow2Error(`l1_size ${l1Size} is too large`);
  if (l1Size > 0 && (l1Offset % cluster !== 0 || l1Offset + l1Size * 8 > fileSize))
    throw new Qcow2Error(`the L1 table at ${l1Offset} is misaligned or past the end of the file`);
  return { version, clusterBits, size, l1Size, l1Offset };
}

/** Writes the guest view of the qcow2 file `inFd` into the regular file `outFd` (sparse). Returns the size. */
export function convertQcow2(inFd: number, outFd: number): number {
  const fileSize = fstatSync(inFd).size;
  const hd = readHeader(inFd, fileSize);
  const cluster = 2 ** hd.clusterBits;
  const perL2 = cluster / 8;
  const l1 = pread(inFd, hd.l1Size * 8, hd.l1Offset);
  ftruncate(outFd, hd.size);
  const x = BigInt(62 - (hd.clusterBits - 8));
  const compOffMask = (1n << x) - 1n;
  const seenL2 = new Set<number>();
  for (let i = 0; i < hd.l1Size; i++) {
    const l1e = l1.readBigUInt64BE(i * 8) & ~COPIED;
    if (l1e === 0n) continue;
    const l2Offset = num(l1e & OFFSET_MASK, 'L2 offset');
    if (l1e !== (l1e & OFFSET_MASK)) throw new Qcow2Error(`L1 entry ${i} has reserved bits set`);
    if (l2Offset % cluster !== 0 || l2Offset + cluster > fileSize)
      throw new Qcow2Error(`L1 entry ${i} points outside the file or off a cluster boundary`);
    // One L2 table per L1 entry: a shared one is legal only with snapshots, and a loop of work otherwise.
    if (seenL2.has(l2Offset)) throw new Qcow2Error(`L2 table at ${l2Offset} is used twice`);
    seenL2.add(l2Offset);
    const l2 = pread(inFd, cluster, l2Offset);
    for (let j = 0; j < perL2; j++) {
      const e = l2.readBigUInt64BE(j * 8) & ~COPIED;
      if (e === 0n) continue;
      const guest = (i * perL2 + j) * cluster;
      if (guest >= hd.size)
        throw new Qcow2Error(`a cluster is mapped past the virtual size (L1 ${i}, L2 ${j})`);
      const len = Math.min(cluster, hd.size - guest);
      let data: Buffer;
      if (e & COMPRESSED) {
        const host = num(e & compOffMask, 'compressed cluster offset');
        const sectors = num(((e & ~COMPRESSED) >> x) + 1n, 'compressed sectors');
        const csize = Math.min(sectors * 512 - (host % 512), fileSize - host);
        if (host >= fileSize || csize <= 0)
          throw new Qcow2Error(`compressed cluster at ${host} is past the end of the file`);
        try {
          data = inflateRawSync(pread(inFd, csize, host), { maxOutputLength: cluster, finishFlush: 2 });
        } catch (err) {
          throw new Qcow2Error(`compressed cluster at ${host} does not inflate`, { cause: err });
        }
        if (data.length < len) throw new Qcow2Error(`compressed cluster at ${host} inflates short`);
      } else {
        if (e & ZERO) continue; // reads as zeros: a hole
        const host = num(e & OFFSET_MASK, 'cluster offset');
        if (e !== (e & OFFSET_MASK)) throw new Qcow2Error(`L2 entry ${j} of L1 ${i} has reserved bits set`);
        if (host % cluster !== 0 || host + len > fileSize)
          throw new Qcow2Error(
            `a data cluster at ${host} is off a cluster boundary or past the end of the file`,
          );
        data = pread(inFd, len, host);
      }
      writeNonZero(outFd, data.subarray(0, len), guest);
    }
  }
  return hd.size;
}

const BLOCK = 4096;
const ZEROS = Buffer.alloc(BLOCK);

/** Writes `data` at `pos`, leaving all-zero 4 KiB blocks as holes. */
function writeNonZero(fd: number, data: Buffer, pos: number): void {
  for (let off = 0; off < data.length; off += BLOCK) {
    const piece = data.subarray(off, off + BLOCK);
    if (piece.length === BLOCK && piece.equals(ZEROS)) continue;
    let w = 0;
    while (w < piece.length) w += writeSyncErrno(fd, piece, w, piece.length - w, pos + off + w);
  }
}

// Kernel ABI of loop devices and BLKPG (linux/loop.h, linux/blkpg.h), 64-bit layouts.

import { check, lazyFunc } from '../ffi/libc.js';

export const LOOP_SET_FD = 0x4c00;
export const LOOP_CLR_FD = 0x4c01;
export const LOOP_SET_STATUS64 = 0x4c04;
export const LOOP_GET_STATUS64 = 0x4c05;
export const LOOP_CONFIGURE = 0x4c0a;
export const LOOP_CTL_ADD = 0x4c80;
export const LOOP_CTL_REMOVE = 0x4c81;
export const LOOP_CTL_GET_FREE = 0x4c82;

export const LO_FLAGS = {
  READ_ONLY: 1,
  AUTOCLEAR: 4,
  PARTSCAN: 8,
  DIRECT_IO: 16,
} as const;

export const LO_NAME_SIZE = 64;

export const BLKPG = 0x1269;
export const BLKPG_ADD_PARTITION = 1;
export const BLKPG_DEL_PARTITION = 2;
export const BLKPG_RESIZE_PARTITION = 3;

/** Major number of loop block devices. */
export const LOOP_MAJOR = 7;

const ioctlPtr = lazyFunc('int ioctl(int fd, unsigned long req, uint8_t *arg)');
const ioctlInt = lazyFunc('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']);

/** ioctl with a struct argument (the Buffer is passed by address). */
export function ioctlBuf(fd: number, req: number, arg: Buffer, what: string, path?: string): number {
  return check(what, ioctlPtr(fd, req, arg), path);
}

/** ioctl with an integer argument; returns the result or -errno via check(). */
export function ioctlArg(fd: number, req: number, arg: number, what: string, path?: string): number {
  return check(what, ioctlInt(fd, req, arg), path);
}

export interface LoopInfo {
  offset: bigint;
  sizeLimit: bigint;
  flags: number;
  fileName: string;
}

/** struct loop_info64 is 232 bytes; struct loop_config wraps it after fd + block_size. */
const LOOP_INFO64_SIZE = 232;
const LOOP_CONFIG_SIZE = 8 + LOOP_INFO64_SIZE + 64;

function encodeInfo(buf: Buffer, at: number, info: LoopInfo): void {
  buf.writeBigUInt64LE(info.offset, at + 24);
  buf.writeBigUInt64LE(info.sizeLimit, at + 32);
  buf.writeUInt32LE(info.flags, at + 52);
  // lo_file_name is informational (shown by losetup); keep it NUL-terminated.
  const name = Buffer.from(info.fileName, 'utf8').subarray(0, LO_NAME_SIZE - 1);
  name.copy(buf, at + 56);
}

export function encodeLoopConfig(fd: number, blockSize: number, info: LoopInfo): Buffer {
  const buf = Buffer.alloc(LOOP_CONFIG_SIZE);
  buf.writeUInt32LE(fd, 0);
  buf.writeUInt32LE(blockSize, 4);
  encodeInfo(buf, 8, info);
  return buf;
}

export function newLoopInfo64(): Buffer {
  return Buffer.alloc(LOOP_INFO64_SIZE);
}

export function decodeLoopInfo64(buf: Buffer): LoopInfo & { number: number } {
  const raw = buf.subarray(56, 56 + LO_NAME_SIZE);
  const end = raw.indexOf(0);
  return {
    offset: buf.readBigUInt64LE(24),
    sizeLimit: buf.readBigUInt64LE(32),
    number: buf.readUInt32LE(40),
    flags: buf.readUInt32LE(52),
    fileName: raw.subarray(0, end < 0 ? raw.length : end).toString('utf8'),
  };
}

/** struct blkpg_partition: start, length (long long), pno (int), devname[64], volname[64]; padded to 152. */
export function encodeBlkpgPartition(pno: number, start: bigint, length: bigint): Buffer {
  const buf = Buffer.alloc(152);
  buf.writeBigInt64LE(start, 0);
  buf.writeBigInt64LE(length, 8);
  buf.writeInt32LE(pno, 16);
  return buf;
}

/** struct blkpg_ioctl_arg: op, flags, datalen (int), then the data pointer at offset 16. */
export function encodeBlkpgArg(op: number, data: Buffer, dataAddress: bigint): Buffer {
  const buf = Buffer.alloc(24);
  buf.writeInt32LE(op, 0);
  buf.writeInt32LE(0, 4);
  buf.writeInt32LE(data.length, 8);
  buf.writeBigUInt64LE(dataAddress, 16);
  return buf;
}

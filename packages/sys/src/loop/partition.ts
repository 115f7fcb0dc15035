// Partitions on a block device via BLKPG, without a partition table scan.

import { fstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { O } from '../constants.js';
import { InvalidArgumentError, SyscallError } from '../errors.js';
import { closeQuietly, open } from '../fd/fd.js';
import { addressOf } from '../ffi/libc.js';
import {
  BLKPG,
  BLKPG_ADD_PARTITION,
  BLKPG_DEL_PARTITION,
  encodeBlkpgArg,
  encodeBlkpgPartition,
  ioctlBuf,
} from './abi.js';
import { ensureBlockNode, removeBlockNode, sysfsDevNumber } from './node.js';

const SECTOR = 512n;

export interface PartitionSpec {
  /** Partition number, 1-based (the M of /dev/loopNpM). */
  number: number;
  startBytes: bigint;
  sizeBytes: bigint;
}

export interface BlockPartition {
  number: number;
  /** /dev/<disk>p<number> (or <disk><number> when the disk name does not end in a digit). */
  path: string;
  name: string;
  major: number;
  minor: number;
  /** We made the device node (udev did not). */
  createdNode: boolean;
}

/** A block device given as an fd, a device path, or anything with an `fd` (a LoopDevice). */
export type BlockTarget = number | string | { fd: number; path: string };

interface Resolved {
  fd: number;
  ownFd: boolean;
  label: string;
  disk: string;
}

function decodeDev(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 32n) & 0xfffff000n) | ((rdev >> 8n) & 0xfffn));
  const minor = Number(((rdev >> 12n) & 0xffffff00n) | (rdev & 0xffn));
  return { major, minor };
}

/** The sysfs name of the whole disk behind `fd` (e.g. `loop3`). */
function diskName(fd: number, label: string): string {
  const st = fstatSync(fd, { bigint: true });
  if (!st.isBlockDevice()) throw new InvalidArgumentError(`'${label}' is not a block device`);
  const { major, minor } = decodeDev(st.rdev);
  return basename(readlinkSync(`/sys/dev/block/${major}:${minor}`));
}

function resolve(target: BlockTarget): Resolved {
  if (typeof target === 'string') {
    const fd = open(target, O.RDONLY);
    try {
      return { fd, ownFd: true, label: target, disk: diskName(fd, target) };
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
  }
  const fd = typeof target === 'number' ? target : target.fd;
  if (fd < 0) throw new InvalidArgumentError('the block device is closed');
  let label = typeof target === 'number' ? `fd ${fd}` : target.path;
  if (typeof target === 'number') {
    try {
      label = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // keep "fd N"
    }
  }
  return { fd, ownFd: false, label, disk: diskName(fd, label) };
}

function partitionName(disk: string, number: number): string {
  return /\d$/.test(disk) ? `${disk}p${number}` : `${disk}${number}`;
}

function blkpg(fd: number, op: number, data: Buffer, what: string, label: string): void {
  // `data` stays referenced by this frame while the kernel reads it through the pointer.
  const arg = encodeBlkpgArg(op, data, addressOf(data));
  ioctlBuf(fd, BLKPG, arg, what, label);
}

/**
 * Adds partition `spec.number` covering the given byte range, and makes sure
 * its device node exists (mknod from sysfs when udev does not make it).
 */
export function addPartition(target: BlockTarget, spec: PartitionSpec): BlockPartition {
  if (!Number.isInteger(spec.number) || spec.number < 1 || spec.number > 65535) {
    throw new InvalidArgumentError(`partition number ${spec.number} is out of range`);
  }
  if (spec.startBytes < 0n || spec.sizeBytes <= 0n || spec.startBytes % SECTOR || spec.sizeBytes % SECTOR) {
    throw new InvalidArgumentError(
      `partition ${spec.number}: start ${spec.startBytes} and size ${spec.sizeBytes} must be positive multiples of 512`,
    );
  }
  const r = resolve(target);
  try {
    const data = encodeBlkpgPartition(spec.number, spec.startBytes, spec.sizeBytes);
    blkpg(r.fd, BLKPG_ADD_PARTITION, data, 'ioctl(BLKPG_ADD_PARTITION)', r.label);
    const name = partitionName(r.disk, spec.number);
    const dev = sysfsDevNumber(name);
    if (dev === undefined) throw new SyscallError('stat', 2, `/sys/class/block/${name}`);
    const path = `/dev/${name}`;
    const createdNode = ensureBlockNode(name, path);
    return { number: spec.number, path, name, major: dev.major, minor: dev.minor, createdNode };
  } finally {
    if (r.ownFd) closeQuietly(r.fd);
  }
}

/** Deletes partition `number` and removes its device node if udev left it behind. */
export function removePartition(target: BlockTarget, number: number): void {
  if (!Number.isInteger(number) || number < 1) {
    throw new InvalidArgumentError(`partition number ${number} is out of range`);
  }
  const r = resolve(target);
  try {
    const name = partitionName(r.disk, number);
    const dev = sysfsDevNumber(name);
    const data = encodeBlkpgPartition(number, 0n, 0n);
    blkpg(r.fd, BLKPG_DEL_PARTITION, data, 'ioctl(BLKPG_DEL_PARTITION)', r.label);
    if (dev !== undefined) removeBlockNode(`/dev/${name}`, dev.major, dev.minor);
  } finally {
    if (r.ownFd) closeQuietly(r.fd);
  }
}

/**
 * The partitions the kernel knows on a block device (from a partition scan or
 * BLKPG), by number, with their device nodes made when missing.
 */
export function listPartitions(target: BlockTarget): BlockPartition[] {
  const r = resolve(target);
  try {
    const out: BlockPartition[] = [];
    for (const name of readdirSync(`/sys/class/block/${r.disk}`)) {
      if (!name.startsWith(r.disk)) continue;
      let number: number;
      try {
        number = Number(readFileSync(`/sys/class/block/${r.disk}/${name}/partition`, 'utf8').trim());
      } catch {
        continue;
      }
      const dev = sysfsDevNumber(name);
      if (dev === undefined || !Number.isInteger(number)) continue;
      const path = `/dev/${name}`;
      out.push({
        number,
        path,
        name,
        major: dev.major,
        minor: dev.minor,
        createdNode: ensureBlockNode(name, path),
      });
    }
    return out.sort((a, b) => a.number - b.number);
  } finally {
    if (r.ownFd) closeQuietly(r.fd);
  }
}

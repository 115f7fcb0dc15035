// Loop devices through /dev/loop-control and LOOP_CONFIGURE, without losetup.

import { readdirSync, readFileSync } from 'node:fs';
import { O } from '../constants.js';
import { InvalidArgumentError, SdError, SyscallError } from '../errors.js';
import { close, closeQuietly, open } from '../fd/fd.js';
import {
  decodeLoopInfo64,
  encodeLoopConfig,
  ioctlArg,
  ioctlBuf,
  LO_FLAGS,
  LOOP_CLR_FD,
  LOOP_CONFIGURE,
  LOOP_CTL_GET_FREE,
  LOOP_GET_STATUS64,
  type LoopInfo,
  newLoopInfo64,
} from './abi.js';
import { ensureBlockNode } from './node.js';
import { sleepSync } from './sleep.js';

export type { LoopInfo } from './abi.js';
export { LO_FLAGS } from './abi.js';
export * from './partition.js';

const EPERM = 1;
const ENOENT = 2;
const ENXIO = 6;
const EACCES = 13;
const EBUSY = 16;
const EINVAL = 22;
const EROFS = 30;
const O_DIRECT = process.arch === 'arm64' ? 0o200000 : 0o40000;

/** How many times LOOP_CTL_GET_FREE + LOOP_CONFIGURE is retried when another process wins the race. */
const ATTACH_ATTEMPTS = 64;

export interface AttachLoopOptions {
  /** Attach read-only even if the file is writable. */
  readOnly?: boolean;
  /** Byte offset into the file where the device starts. */
  offset?: bigint;
  /** Size of the device in bytes (0 or unset: up to the end of the file). */
  sizeLimit?: bigint;
  /** Ask for direct I/O on the backing file (a hint: see LoopDevice.directIo). */
  directIo?: boolean;
  /** Detach when the last fd of the device closes (default true). */
  autoclear?: boolean;
  /** Let the kernel scan the partition table. */
  partscan?: boolean;
  /** Logical block size of the device (0 or unset: the kernel's default). */
  blockSize?: number;
}

/** Why a device is read-only: the caller asked, or the file could not be opened for writing. */
export type ReadOnlyReason = 'requested' | 'file';

/** A loop device attached by attachLoop(); holds an open fd on the device. */
export class LoopDevice {
  readonly path: string;
  readonly number: number;
  readonly backingFile: string;
  readonly readOnly: boolean;
  readonly readOnlyReason: ReadOnlyReason | undefined;
  readonly autoclear: boolean;
  readonly directIo: boolean;
  #fd: number;

  constructor(init: {
    number: number;
    fd: number;
    backingFile: string;
    readOnlyReason: ReadOnlyReason | undefined;
    autoclear: boolean;
    directIo: boolean;
  }) {
    this.number = init.number;
    this.path = `/dev/loop${init.number}`;
    this.#fd = init.fd;
    this.backingFile = init.backingFile;
    this.readOnlyReason = init.readOnlyReason;
    this.readOnly = init.readOnlyReason !== undefined;
    this.autoclear = init.autoclear;
    this.directIo = init.directIo;
  }

  /** The open fd of the device; -1 once detached. */
  get fd(): number {
    return this.#fd;
  }

  /** The device's current settings (LOOP_GET_STATUS64). */
  info(): LoopInfo & { number: number } {
    if (this.#fd < 0) throw new SdError('EBADF', `loop device '${this.path}' is detached`);
    const buf = newLoopInfo64();
    ioctlBuf(this.#fd, LOOP_GET_STATUS64, buf, 'ioctl(LOOP_GET_STATUS64)', this.path);
    return decodeLoopInfo64(buf);
  }

  /**
   * Detaches the backing file and closes our fd. While something else holds the
   * device open (a mounted partition) the kernel only marks it autoclear and
   * detaches when that goes away. Safe to call twice.
   */
  detach(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    try {
      ioctlArg(fd, LOOP_CLR_FD, 0, 'ioctl(LOOP_CLR_FD)', this.path);
    } catch (err) {
      // ENXIO: already unbound (autoclear raced us).
      if (!(err instanceof SyscallError && err.errno === ENXIO)) {
        closeQuietly(fd);
        throw err;
      }
    }
    close(fd);
    // The release runs when close() returns; give sysfs a moment to settle.
    for (let i = 0; i < 50 && loopBackingFile(this.number) !== undefined; i++) sleepSync(10);
  }

  /** Closes our fd only: with autoclear that is the detach. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    close(fd);
  }
}

function openBacking(
  file: string,
  readOnly: boolean,
  directIo: boolean,
): { fd: number; reason?: ReadOnlyReason } {
  const tryOpen = (flags: number): number => {
    if (directIo) {
      try {
        return open(file, flags | O_DIRECT);
      } catch (err) {
        // Filesystems without O_DIRECT (tmpfs) say EINVAL: fall back to buffered I/O.
        if (!(err instanceof SyscallError && err.errno === EINVAL)) throw err;
      }
    }
    return open(file, flags);
  };
  if (readOnly) return { fd: tryOpen(O.RDONLY), reason: 'requested' };
  try {
    return { fd: tryOpen(O.RDWR) };
  } catch (err) {
    if (err instanceof SyscallError && (err.errno === EACCES || err.errno === EROFS || err.errno === EPERM)) {
      return { fd: tryOpen(O.RDONLY), reason: 'file' };
    }
    throw err;
  }
}

/** Attaches `file` to a free loop device. */
export function attachLoop(file: string, opts: AttachLoopOptions = {}): LoopDevice {
  if (file === '') throw new InvalidArgumentError('attachLoop: empty file name');
  const offset = opts.offset ?? 0n;
  const sizeLimit = opts.sizeLimit ?? 0n;
  if (offset < 0n || sizeLimit < 0n) {
    throw new InvalidArgumentError(`attachLoop '${file}': offset and sizeLimit must not be negative`);
  }
  const autoclear = opts.autoclear ?? true;
  const backing = openBacking(file, opts.readOnly === true, opts.directIo === true);
  let ctl = -1;
  try {
    ctl = open('/dev/loop-control', O.RDWR);
    let flags = 0;
    if (backing.reason !== undefined) flags |= LO_FLAGS.READ_ONLY;
    if (autoclear) flags |= LO_FLAGS.AUTOCLEAR;
    if (opts.partscan) flags |= LO_FLAGS.PARTSCAN;
    if (opts.directIo) flags |= LO_FLAGS.DIRECT_IO;
    const config = encodeLoopConfig(backing.fd, opts.blockSize ?? 0, {
      offset,
      sizeLimit,
      flags,
      fileName: file,
    });
    let lastErr: unknown;
    for (let attempt = 0; attempt < ATTACH_ATTEMPTS; attempt++) {
      const nr = ioctlArg(ctl, LOOP_CTL_GET_FREE, 0, 'ioctl(LOOP_CTL_GET_FREE)', '/dev/loop-control');
      const path = `/dev/loop${nr}`;
      let fd: number;
      try {
        ensureBlockNode(`loop${nr}`, path);
        fd = open(path, backing.reason !== undefined ? O.RDONLY : O.RDWR);
      } catch (err) {
        // The device was removed between GET_FREE and open (LOOP_CTL_REMOVE by someone else).
        if (err instanceof SyscallError && (err.errno === ENOENT || err.errno === ENXIO)) {
          lastErr = err;
          continue;
        }
        throw err;
      }
      try {
        ioctlBuf(fd, LOOP_CONFIGURE, config, 'ioctl(LOOP_CONFIGURE)', path);
      } catch (err) {
        closeQuietly(fd);
        // Another process configured the device first: take the next free one.
        if (err instanceof SyscallError && err.errno === EBUSY) {
          lastErr = err;
          continue;
        }
        // Name the file: the device number is incidental to the caller.
        if (err instanceof SyscallError) {
          throw new SyscallError(err.syscall, err.errno, file, { cause: err });
        }
        throw err;
      }
      return new LoopDevice({
        number: nr,
        fd,
        backingFile: file,
        readOnlyReason: backing.reason,
        autoclear,
        directIo: opts.directIo === true && readSysfs(`/sys/block/loop${nr}/loop/dio`) === '1',
      });
    }
    throw new SdError('EBUSY', `attaching '${file}': no free loop device after ${ATTACH_ATTEMPTS} attempts`, {
      cause: lastErr,
    });
  } finally {
    closeQuietly(ctl, backing.fd);
  }
}

function readSysfs(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function loopBackingFile(nr: number): string | undefined {
  const v = readSysfs(`/sys/block/loop${nr}/loop/backing_file`);
  return v === '' ? undefined : v;
}

/** One bound loop device as sysfs shows it. */
export interface LoopDeviceInfo {
  name: string;
  path: string;
  number: number;
  backingFile: string;
  offset: bigint;
  sizeLimit: bigint;
  readOnly: boolean;
  autoclear: boolean;
  partscan: boolean;
  directIo: boolean;
}

/** The loop devices that have a backing file, by number. */
export function listLoopDevices(): LoopDeviceInfo[] {
  const out: LoopDeviceInfo[] = [];
  for (const name of readdirSync('/sys/block')) {
    const m = /^loop(\d+)$/.exec(name);
    if (!m) continue;
    const dir = `/sys/block/${name}`;
    const backingFile = readSysfs(`${dir}/loop/backing_file`);
    if (backingFile === undefined || backingFile === '') continue;
    out.push({
      name,
      path: `/dev/${name}`,
      number: Number(m[1]),
      backingFile,
      offset: BigInt(readSysfs(`${dir}/loop/offset`) ?? '0'),
      sizeLimit: BigInt(readSysfs(`${dir}/loop/sizelimit`) ?? '0'),
      readOnly: readSysfs(`${dir}/ro`) === '1',
      autoclear: readSysfs(`${dir}/loop/autoclear`) === '1',
      partscan: readSysfs(`${dir}/loop/partscan`) === '1',
      directIo: readSysfs(`${dir}/loop/dio`) === '1',
    });
  }
  return out.sort((a, b) => a.number - b.number);
}

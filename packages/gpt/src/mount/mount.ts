import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  addPartition,
  attachLoop,
  attachMount,
  type BlockPartition,
  closeQuietly,
  fdPath,
  type LoopDevice,
  listPartitions,
  MOUNT_ATTR,
  MOVE_MOUNT,
  mkdirInRoot,
  mountFs,
  moveMount,
  O,
  openInRoot,
  openRoot,
  SdError,
  SyscallError,
} from '@sd/sys';
import { type DissectOptions, dissectSource } from '../dissect/dissect.js';
import type { DissectedImage } from '../dissect/model.js';
import { type MountStep, type PlanOptions, planMounts } from '../dissect/plan.js';
import { ImageError } from '../errors.js';
import { fdSource } from '../source.js';
import { releaseMounts, removePartitions } from './teardown.js';

/**
 * Attaches an image to a loop device, adds its partitions with BLKPG (the
 * kernel does not scan loop devices here) and mounts them at a directory in
 * DPS order. The image is dissected through the loop device itself, so what
 * is mounted is what was checked. Whatever fails halfway, everything done so
 * far is undone in reverse before the error is thrown.
 */

export interface MountImageOptions extends PlanOptions, DissectOptions {
  /** Create the directory when it does not exist. */
  mkdir?: boolean;
  /** Mount every partition nosuid too (sd-dissect --mount does, unless --suid). */
  nosuid?: boolean;
}

export interface ImageMount {
  step: MountStep;
  /** The source device. */
  device: string;
  /** The mount point as the host sees it. */
  path: string;
}

/** A mounted image; release() takes it down again. */
export class MountedImage {
  readonly image: DissectedImage;
  readonly dir: string;
  readonly loop: LoopDevice;
  readonly partitions: BlockPartition[];
  /** In mount order. */
  readonly mounts: ImageMount[];
  readonly readOnly: boolean;
  #released = false;

  constructor(init: {
    image: DissectedImage;
    dir: string;
    loop: LoopDevice;
    partitions: BlockPartition[];
    mounts: ImageMount[];
    readOnly: boolean;
  }) {
    this.image = init.image;
    this.dir = init.dir;
    this.loop = init.loop;
    this.partitions = init.partitions;
    this.mounts = init.mounts;
    this.readOnly = init.readOnly;
  }

  /**
   * Unmounts in reverse order, removes the partitions and detaches the loop
   * device. Does all of it even when a step fails, then throws the first
   * failure. Safe to call twice.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    teardown(this.loop, this.mounts, this.partitions);
  }

  /**
   * Leaves the image mounted after this process exits (sd-dissect --mount):
   * drops our hold on the loop device, which the kernel then detaches on the
   * last unmount (autoclear). umountImage() removes the partitions.
   */
  keep(): void {
    if (this.#released) return;
    this.#released = true;
    this.loop.close();
  }
}

function teardown(loop: LoopDevice, mounts: ImageMount[], partitions: BlockPartition[]): void {
  const errors: unknown[] = [];
  errors.push(...releaseMounts(mounts.map((m) => m.path).reverse()));
  errors.push(...removePartitions(loop, partitions.map((p) => p.number).reverse()));
  try {
    loop.detach();
  } catch (e) {
    errors.push(e);
  }
  if (errors.length) {
    throw new SdError(
      'EBUSY',
      `taking down ${loop.backingFile} left something behind: ${String(errors[0])}`,
      {
        cause: errors[0],
      },
    );
  }
}

function describeStep(s: MountStep): string {
  const p = s.partition;
  return p.number === null
    ? `the image's ${s.fstype} file system`
    : `partition ${p.number} (${s.role}, ${s.fstype})`;
}

function mountFd(img: DissectedImage, step: MountStep, device: string, nosuid: boolean): number {
  // Always nodev: a device node shipped in an image (a 0666 node of a host
  // loop device) must never open the host's device, for anyone.
  let attrs = MOUNT_ATTR.NODEV;
  if (step.readOnly) attrs |= MOUNT_ATTR.RDONLY;
  if (nosuid) attrs |= MOUNT_ATTR.NOSUID;
  try {
    return mountFs(step.fstype, step.options, attrs, device);
  } catch (e) {
    if (e instanceof SyscallError && e.syscall === 'fsopen' && e.code === 'ENODEV') {
      throw new ImageError(
        'NO_KERNEL_SUPPORT',
        img.image,
        `${describeStep(step)}: the running kernel has no ${step.fstype} driver`,
        { cause: e },
      );
    }
    const code = e instanceof SdError ? e.code : 'EIO';
    throw new SdError(code, `${img.image}: mounting ${describeStep(step)}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

function isDir(rootFd: number, path: string): boolean {
  try {
    closeQuietly(openInRoot(rootFd, path, O.PATH | O.DIRECTORY));
    return true;
  } catch {
    return false;
  }
}

function isEmptyDir(rootFd: number, path: string): boolean {
  if (!isDir(rootFd, path)) return false;
  try {
    const fd = openInRoot(rootFd, path, O.RDONLY | O.DIRECTORY);
    try {
      return readdirSync(`/proc/self/fd/${fd}`).length === 0;
    } finally {
      closeQuietly(fd);
    }
  } catch {
    return false;
  }
}

/** Where a non-root step goes inside the mounted root, made when missing. */
function targetIn(rootFd: number, img: DissectedImage, step: MountStep): string {
  let where = step.where;
  if (step.alternative && !isDir(rootFd, where) && isEmptyDir(rootFd, step.alternative))
    where = step.alternative;
  if (!isDir(rootFd, where)) {
    try {
      mkdirInRoot(rootFd, where, 0o755, { parents: true });
    } catch (e) {
      throw new SdError(
        e instanceof SdError ? e.code : 'EIO',
        `${img.image}: no directory ${where} in the image to mount ${describeStep(step)} on, and it cannot be made: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  return where;
}

/** Mounts the image at `path` on `dir`; see MountedImage.release() and keep(). */
export function mountImage(path: string, dir: string, options: MountImageOptions = {}): MountedImage {
  const target = resolve(dir);
  if (options.mkdir && !existsSync(target)) mkdirSync(target, { recursive: true, mode: 0o755 });
  const loop = attachLoop(path, { readOnly: options.readOnly === true, autoclear: true });
  const partitions: BlockPartition[] = [];
  const mounts: ImageMount[] = [];
  try {
    // Partitions a previous user of this device left (BLKPG ones survive a detach).
    removeStale(loop);
    const img = dissectSource(fdSource(loop.fd, path), options);
    const readOnly = options.readOnly === true || loop.readOnly;
    const plan = planMounts(img, { ...options, readOnly });
    const devices = new Map<number, string>();
    for (const step of plan) {
      const n = step.partition.number;
      if (n === null || devices.has(n)) continue;
      const bp = addPartition(loop, {
        number: n,
        startBytes: BigInt(step.partition.offset),
        sizeBytes: BigInt(step.partition.size),
      });
      partitions.push(bp);
      devices.set(n, bp.path);
    }
    let rootFd = -1;
    try {
      for (const step of plan) {
        const device = step.partition.number === null ? loop.path : devices.get(step.partition.number)!;
        const mfd = mountFd(img, step, device, options.nosuid === true);
        try {
          if (step.role === 'root') {
            attachMount(mfd, target);
            mounts.push({ step, device, path: target });
            rootFd = openRoot(target);
            continue;
          }
          const where = targetIn(rootFd, img, step);
          const at = openInRoot(rootFd, where, O.PATH | O.DIRECTORY);
          try {
            const real = fdPath(at);
            moveMount(mfd, '', at, '', MOVE_MOUNT.F_EMPTY_PATH | MOVE_MOUNT.T_EMPTY_PATH);
            mounts.push({ step: { ...step, where }, device, path: real });
          } finally {
            closeQuietly(at);
          }
        } finally {
          closeQuietly(mfd);
        }
      }
    } finally {
      closeQuietly(rootFd);
    }
    return new MountedImage({ image: img, dir: target, loop, partitions, mounts, readOnly });
  } catch (e) {
    try {
      teardown(loop, mounts, partitions);
    } catch {
      // The first error is the one to report; teardown did all it could.
    }
    throw e;
  }
}

function removeStale(loop: LoopDevice): void {
  const stale = listPartitions(loop).map((p) => p.number);
  const errors = removePartitions(loop, stale);
  if (errors.length) {
    throw new SdError(
      'EBUSY',
      `${loop.path} has partitions left from an earlier use that cannot be removed`,
      {
        cause: errors[0],
      },
    );
  }
}

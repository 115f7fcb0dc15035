import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  type BlockTarget,
  closeQuietly,
  LoopDevice,
  listPartitions,
  MNT,
  mountsUnder,
  O,
  open,
  removePartition,
  SdError,
  SyscallError,
  UMOUNT_NOFOLLOW,
  umount,
} from '@sd/sys';

/**
 * Taking an image down: unmount (deepest first), remove the BLKPG
 * partitions, detach the loop device. A mount that stays busy is detached
 * lazily so that the rest can go on; a partition still held by such a mount
 * is left to the loop device's autoclear.
 */

const cell = new Int32Array(new SharedArrayBuffer(4));
function sleep(ms: number): void {
  Atomics.wait(cell, 0, 0, ms);
}

const RETRIES = 20;

/** Unmounts each path in the order given; returns the failures instead of stopping at one. */
export function releaseMounts(paths: string[]): unknown[] {
  const errors: unknown[] = [];
  for (const path of paths) {
    for (let attempt = 0; ; attempt++) {
      try {
        umount(path, UMOUNT_NOFOLLOW);
        break;
      } catch (e) {
        if (e instanceof SyscallError && (e.code === 'EINVAL' || e.code === 'ENOENT')) break; // gone already
        if (e instanceof SyscallError && e.code === 'EBUSY' && attempt < RETRIES) {
          sleep(10);
          continue;
        }
        try {
          umount(path, UMOUNT_NOFOLLOW | MNT.DETACH);
        } catch {
          errors.push(e);
        }
        break;
      }
    }
  }
  return errors;
}

/** Removes partitions by number; a partition that stays busy is reported, the rest still go. */
export function removePartitions(target: BlockTarget, numbers: number[]): unknown[] {
  const errors: unknown[] = [];
  for (const n of numbers) {
    for (let attempt = 0; ; attempt++) {
      try {
        removePartition(target, n);
        break;
      } catch (e) {
        if (e instanceof SyscallError && e.code === 'ENXIO') break;
        if (e instanceof SyscallError && e.code === 'EBUSY' && attempt < RETRIES) {
          sleep(10);
          continue;
        }
        errors.push(e);
        break;
      }
    }
  }
  return errors;
}

const LOOP_SOURCE = /^\/dev\/loop(\d+)(?:p\d+)?$/;

function sysfs(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Unmounts everything at and below `dir` and detaches the loop devices the
 * mounts came from, with their partitions (sd-dissect --umount). Returns the
 * loop devices it detached.
 */
export function umountImage(dir: string): string[] {
  const target = resolve(dir);
  const mounts = mountsUnder(target);
  if (!mounts.some((m) => m.mountPoint === target)) {
    throw new SdError('EINVAL', `${target} is not a mount point`);
  }
  // Hold every loop device open while unmounting, so that autoclear cannot
  // detach it before its partitions are removed.
  const held = new Map<number, number>();
  try {
    for (const m of mounts) {
      const match = LOOP_SOURCE.exec(m.source);
      if (!match) continue;
      const nr = Number(match[1]);
      if (held.has(nr)) continue;
      try {
        held.set(nr, open(`/dev/loop${nr}`, O.RDONLY));
      } catch {
        // Gone already: nothing to detach.
      }
    }
    const errors = releaseMounts(mounts.map((m) => m.mountPoint).reverse());
    if (errors.length) {
      throw new SdError('EBUSY', `unmounting ${target}: ${String(errors[0])}`, { cause: errors[0] });
    }
    const detached: string[] = [];
    for (const [nr, fd] of held) {
      const path = `/dev/loop${nr}`;
      const parts = listPartitions({ fd, path }).map((p) => p.number);
      const errs = removePartitions({ fd, path }, parts);
      if (errs.length) throw new SdError('EBUSY', `${path}: ${String(errs[0])}`, { cause: errs[0] });
      const backingFile = sysfs(`/sys/block/loop${nr}/loop/backing_file`);
      held.delete(nr);
      if (!backingFile) {
        closeQuietly(fd);
        continue;
      }
      new LoopDevice({
        number: nr,
        fd,
        backingFile,
        readOnlyReason: undefined,
        autoclear: true,
        directIo: false,
      }).detach();
      detached.push(path);
    }
    return detached;
  } finally {
    for (const fd of held.values()) closeQuietly(fd);
  }
}

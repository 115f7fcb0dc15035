import { SdError } from '../errors.js';
import { lazyFunc } from '../ffi/libc.js';

/**
 * The file system uid and gid of the calling thread (setfsuid/setfsgid are
 * per thread, also in glibc). A file created through an idmapped mount must
 * get an owner the mount maps: root of the host is not mapped in a
 * container's idmapped root, so files are created as the container's root
 * (its UID shift) and chowned afterwards. Changing the fsuid away from 0
 * drops CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER… from the effective set;
 * switching back restores them.
 */

const c = {
  setfsuid: lazyFunc('int setfsuid(uint32_t fsuid)'),
  setfsgid: lazyFunc('int setfsgid(uint32_t fsgid)'),
};

/** Runs `fn` (synchronously: the thread must not yield) with the given fsuid/fsgid, then restores them. */
export function withFsIds<T>(uid: number, gid: number, fn: () => T): T {
  const oldGid = c.setfsgid(gid) as number;
  const oldUid = c.setfsuid(uid) as number;
  try {
    // setfsuid reports no errors: read the value back (an invalid id leaves it unchanged).
    if ((c.setfsuid(0xffffffff) as number) !== uid || (c.setfsgid(0xffffffff) as number) !== gid)
      throw new SdError('EPERM', `Cannot switch the file system ids to ${uid}:${gid}`);
    return fn();
  } finally {
    c.setfsuid(oldUid);
    c.setfsgid(oldGid);
  }
}

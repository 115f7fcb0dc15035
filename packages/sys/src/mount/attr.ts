import { view } from '../view.js';

/** struct mount_attr. */
export interface MountAttr {
  /** MOUNT_ATTR.* to set. */
  set?: number;
  /** MOUNT_ATTR.* to clear (for atime, clear MOUNT_ATTR__ATIME = 0x70 and set one). */
  clear?: number;
  /** MS.PRIVATE, MS.SLAVE, MS.SHARED or MS.UNBINDABLE. */
  propagation?: number;
  /** With MOUNT_ATTR.IDMAP: an fd of the user namespace whose mapping the mount gets. */
  usernsFd?: number;
}

/** Encodes a struct mount_attr (for mount_setattr here and in SpawnProgram.mountSetattr). */
export function encodeMountAttr(attr: MountAttr): Buffer {
  const b = Buffer.alloc(32);
  const v = view(b);
  v.setBigUint64(0, BigInt(attr.set ?? 0), true);
  v.setBigUint64(8, BigInt(attr.clear ?? 0), true);
  v.setBigUint64(16, BigInt(attr.propagation ?? 0), true);
  v.setBigUint64(24, BigInt(attr.usernsFd ?? 0), true);
  return b;
}

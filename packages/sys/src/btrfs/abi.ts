import { io, ior, iow, iowr } from '../ioctl/ioctl.js';

// The btrfs ioctl ABI (linux/btrfs.h, linux/btrfs_tree.h), 64-bit layouts.

export const BTRFS_IOCTL_MAGIC = 0x94;
/** struct btrfs_ioctl_vol_args: __s64 fd; char name[4088]. */
export const VOL_ARGS_SIZE = 4096;
export const VOL_NAME_MAX = 4087;
/** struct btrfs_ioctl_vol_args_v2: fd, transid, flags, {size | qgroup_inherit*}, unused[4], name[4040]. */
export const VOL_ARGS_V2_SIZE = 4096;
export const VOL_V2_NAME_OFFSET = 56;
export const VOL_V2_NAME_MAX = 4039;

export const BTRFS_IOC = {
  SNAP_CREATE: iow(BTRFS_IOCTL_MAGIC, 1, VOL_ARGS_SIZE),
  SUBVOL_CREATE: iow(BTRFS_IOCTL_MAGIC, 14, VOL_ARGS_SIZE),
  SNAP_DESTROY: iow(BTRFS_IOCTL_MAGIC, 15, VOL_ARGS_SIZE),
  TREE_SEARCH: iowr(BTRFS_IOCTL_MAGIC, 17, 4096),
  INO_LOOKUP: iowr(BTRFS_IOCTL_MAGIC, 18, 4096),
  SNAP_CREATE_V2: iow(BTRFS_IOCTL_MAGIC, 23, VOL_ARGS_V2_SIZE),
  SUBVOL_CREATE_V2: iow(BTRFS_IOCTL_MAGIC, 24, VOL_ARGS_V2_SIZE),
  SUBVOL_GETFLAGS: ior(BTRFS_IOCTL_MAGIC, 25, 8),
  SUBVOL_SETFLAGS: iow(BTRFS_IOCTL_MAGIC, 26, 8),
  QUOTA_CTL: iowr(BTRFS_IOCTL_MAGIC, 40, 16),
  QGROUP_CREATE: iow(BTRFS_IOCTL_MAGIC, 42, 16),
  // Declared _IOR in the kernel's header although the kernel reads it.
  QGROUP_LIMIT: ior(BTRFS_IOCTL_MAGIC, 43, 48),
  QUOTA_RESCAN_WAIT: io(BTRFS_IOCTL_MAGIC, 46),
} as const;

/** Flags of SNAP_CREATE_V2 / SUBVOL_GETFLAGS. */
export const BTRFS_SUBVOL_RDONLY = 1n << 1n;

export const BTRFS_QUOTA_CTL = { ENABLE: 1, DISABLE: 2 } as const;
export const BTRFS_QGROUP_LIMIT = { MAX_RFER: 1n, MAX_EXCL: 2n } as const;

/** The inode number of a subvolume's root directory. */
export const BTRFS_FIRST_FREE_OBJECTID = 256n;
export const BTRFS_QUOTA_TREE_OBJECTID = 8n;
export const BTRFS_QGROUP_STATUS_KEY = 240;
export const BTRFS_QGROUP_INFO_KEY = 242;
export const BTRFS_QGROUP_LIMIT_KEY = 244;

/** struct btrfs_ioctl_search_key is 104 bytes; items follow in the rest of the 4096-byte struct. */
export const SEARCH_KEY_SIZE = 104;
export const SEARCH_HEADER_SIZE = 32;

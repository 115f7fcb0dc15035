// The btrfs ioctl ABI (linux/btrfs.h, linux/btrfs_tree.h), 64-bit layouts.

export const BTRFS_IOCTL_MAGIC = 0x94;
/** struct btrfs_ioctl_vol_args: __s64 fd; char name[4088]. */
export const VOL_ARGS_SIZE = 4096;
export const VOL_NAME_MAX = 4087;
/** struct btrfs_ioctl_vol_args_v2: fd, transid, flags, {size | qgroup_inherit*}, unused[4], name[4040]. */
export const VOL_ARGS_V2_SIZE = 4096;
export const VOL_V2_NAME_OFFSET = 56;
export const VOL_V2_NAME_MAX = 4039;

/**
 * The request numbers, as _IO/_IOR/_IOW/_IOWR(BTRFS_IOCTL_MAGIC, nr, size)
 * give them (abi.test.ts checks each against ioctl.ts): written out, since
 * computing them was ~0.1 ms of every CLI start.
 */
export const BTRFS_IOC = {
  /** _IOW(0x94, 1, vol_args) */
  SNAP_CREATE: 0x50009401,
  /** _IOW(0x94, 14, vol_args) */
  SUBVOL_CREATE: 0x5000940e,
  /** _IOW(0x94, 15, vol_args) */
  SNAP_DESTROY: 0x5000940f,
  /** _IOWR(0x94, 17, search_args: 4096) */
  TREE_SEARCH: 0xd0009411,
  /** _IOWR(0x94, 18, ino_lookup_args: 4096) */
  INO_LOOKUP: 0xd0009412,
  /** _IOW(0x94, 23, vol_args_v2) */
  SNAP_CREATE_V2: 0x50009417,
  /** _IOW(0x94, 24, vol_args_v2) */
  SUBVOL_CREATE_V2: 0x50009418,
  /** _IOR(0x94, 25, u64) */
  SUBVOL_GETFLAGS: 0x80089419,
  /** _IOW(0x94, 26, u64) */
  SUBVOL_SETFLAGS: 0x4008941a,
  /** _IOWR(0x94, 40, quota_ctl_args: 16) */
  QUOTA_CTL: 0xc0109428,
  /** _IOW(0x94, 42, qgroup_create_args: 16) */
  QGROUP_CREATE: 0x4010942a,
  /** _IOR(0x94, 43, qgroup_limit_args: 48), read-direction as the kernel declares it */
  QGROUP_LIMIT: 0x8030942b,
  /** _IO(0x94, 46) */
  QUOTA_RESCAN_WAIT: 0x942e,
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

import { describe, expect, it } from 'vitest';
import { io, ior, iow, iowr } from '../ioctl/ioctl.js';
import { BTRFS_IOC, BTRFS_IOCTL_MAGIC as M, VOL_ARGS_SIZE, VOL_ARGS_V2_SIZE } from './abi.js';

describe('BTRFS_IOC', () => {
  it('holds the numbers the _IO* macros give (linux/btrfs.h)', () => {
    expect(BTRFS_IOC).toEqual({
      SNAP_CREATE: iow(M, 1, VOL_ARGS_SIZE),
      SUBVOL_CREATE: iow(M, 14, VOL_ARGS_SIZE),
      SNAP_DESTROY: iow(M, 15, VOL_ARGS_SIZE),
      TREE_SEARCH: iowr(M, 17, 4096),
      INO_LOOKUP: iowr(M, 18, 4096),
      SNAP_CREATE_V2: iow(M, 23, VOL_ARGS_V2_SIZE),
      SUBVOL_CREATE_V2: iow(M, 24, VOL_ARGS_V2_SIZE),
      SUBVOL_GETFLAGS: ior(M, 25, 8),
      SUBVOL_SETFLAGS: iow(M, 26, 8),
      QUOTA_CTL: iowr(M, 40, 16),
      QGROUP_CREATE: iow(M, 42, 16),
      QGROUP_LIMIT: ior(M, 43, 48),
      QUOTA_RESCAN_WAIT: io(M, 46),
    });
  });
});

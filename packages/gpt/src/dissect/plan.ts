import { ImageError } from '../errors.js';
import { type FsType, READ_ONLY_FS } from '../probe/probe.js';
import { type DissectedImage, type DissectedPartition, MOUNT_ORDER, type MountRole } from './model.js';

/**
 * Which partition is mounted where, in which order, read-only or not: data
 * that the mounter executes and unit tests check. Root first, then /usr,
 * /home, /srv, /var, /tmp, then XBOOTLDR at /boot and the ESP at /efi (or at
 * /boot when there is no XBOOTLDR and the image has an empty /boot but no
 * /efi, as systemd decides it once root is mounted).
 */

export interface MountStep {
  role: MountRole;
  partition: DissectedPartition;
  /** Where in the image's tree ('/' for root). */
  where: string;
  /** The ESP's alternative when `where` is missing and this one is an empty directory. */
  alternative?: string;
  fstype: FsType;
  readOnly: boolean;
  /** Why it is read-only: asked for, GPT bit 60, or a read-only file system. */
  readOnlyReason?: 'requested' | 'partition-flag' | 'file-system';
  /** File system options (fsconfig keys). */
  options: Record<string, string | boolean>;
}

export interface PlanOptions {
  /** Mount everything read-only. */
  readOnly?: boolean;
  /** Roles to leave out (as systemd-dissect's --mount leaves out nothing; for callers that mount less). */
  skip?: MountRole[];
}

const WHERE: Record<MountRole, string> = {
  root: '/',
  usr: '/usr',
  home: '/home',
  srv: '/srv',
  var: '/var',
  tmp: '/var/tmp',
  xbootldr: '/boot',
  esp: '/efi',
};

function unsupported(img: DissectedImage, p: DissectedPartition, role: string): ImageError {
  const which = p.number === null ? 'the image' : `partition ${p.number} (${role})`;
  const fs = p.fs;
  if (!fs) {
    return new ImageError('UNSUPPORTED', img.image, `${which} holds no file system that sd recognises`);
  }
  if (fs.type === 'crypto_LUKS') {
    return new ImageError(
      'UNSUPPORTED',
      img.image,
      `${which} is LUKS${fs.version ?? ''}-encrypted: unlocking encrypted partitions is not supported yet`,
    );
  }
  if (fs.type === 'DM_verity_hash') {
    return new ImageError(
      'UNSUPPORTED',
      img.image,
      `${which} holds dm-verity hash data: verity-protected images are not supported yet`,
    );
  }
  return new ImageError(
    'UNSUPPORTED',
    img.image,
    `${which} holds ${fs.type}, which is not a file system to mount`,
  );
}

/** The mount plan of a dissected image. Throws ImageError when it has no usable root. */
export function planMounts(img: DissectedImage, options: PlanOptions = {}): MountStep[] {
  if (img.unusable) throw new ImageError(img.unusable.code, img.image, img.unusable.message);
  const steps: MountStep[] = [];
  for (const role of MOUNT_ORDER) {
    const p = img.roles[role];
    if (!p || options.skip?.includes(role)) continue;
    const fs = p.fs;
    if (!fs || fs.type === 'swap' || fs.type === 'crypto_LUKS' || fs.type === 'DM_verity_hash') {
      throw unsupported(img, p, role);
    }
    let readOnlyReason: MountStep['readOnlyReason'];
    if (options.readOnly) readOnlyReason = 'requested';
    else if (p.flags.readOnly) readOnlyReason = 'partition-flag';
    else if (READ_ONLY_FS.has(fs.type)) readOnlyReason = 'file-system';
    const opts: Record<string, string | boolean> = {};
    if (readOnlyReason) opts.ro = true;
    // The same image mounted twice (two read-only containers) has the same XFS UUID twice.
    if (fs.type === 'xfs') opts.nouuid = true;
    // Boot partitions hold secrets (random seeds, keys): only root may read them, as systemd mounts them.
    if (fs.type === 'vfat') opts.umask = '0077';
    const step: MountStep = {
      role,
      partition: p,
      where: WHERE[role],
      fstype: fs.type,
      readOnly: readOnlyReason !== undefined,
      options: opts,
    };
    if (readOnlyReason) step.readOnlyReason = readOnlyReason;
    if (role === 'esp' && !img.roles.xbootldr) step.alternative = '/boot';
    steps.push(step);
  }
  return steps;
}

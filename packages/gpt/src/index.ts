export { crc32 } from './crc32.js';
export type { DissectOptions } from './dissect/dissect.js';
export { compareVersions, dissectImage, dissectSource } from './dissect/dissect.js';
export type { DissectedImage, DissectedPartition, MountRole, Role } from './dissect/model.js';
export { MOUNT_ORDER } from './dissect/model.js';
export type { MountStep, PlanOptions } from './dissect/plan.js';
export { planMounts } from './dissect/plan.js';
export type { DpsArch, PartitionDesignator, PartitionFlags, PartitionType } from './dps.js';
export {
  decodePartitionFlags,
  GPT_ATTR,
  hostDpsArch,
  partitionTypeFromGuid,
  partitionTypeGuid,
  partitionTypes,
} from './dps.js';
export type { ImageErrorCode } from './errors.js';
export { ImageError } from './errors.js';
export { guidFromBytes, guidToBytes, isGuid, normalizeGuid } from './guid.js';
export type { ImageMount, MountImageOptions } from './mount/mount.js';
export { MountedImage, mountImage } from './mount/mount.js';
export { umountImage } from './mount/teardown.js';
export type { FsProbe, FsType } from './probe/probe.js';
export { NOT_MOUNTABLE, probeFilesystem, READ_ONLY_FS } from './probe/probe.js';
export type { ImageSource } from './source.js';
export { bufferSource, fdSource, MAX_READ, withFileSource } from './source.js';
export { detectGpt, MAX_ENTRY_ARRAY, readGpt } from './table/gpt.js';
export { readMbr } from './table/mbr.js';
export type { PartitionTable, TableEntry } from './table/types.js';

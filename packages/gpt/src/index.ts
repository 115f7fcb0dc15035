export type { DpsArch, PartitionDesignator, PartitionFlags, PartitionType } from './dps.js';
export {
  decodePartitionFlags,
  GPT_ATTR,
  hostDpsArch,
  PARTITION_TYPES,
  partitionTypeFromGuid,
  partitionTypeGuid,
} from './dps.js';
export { guidFromBytes, guidToBytes, isGuid, normalizeGuid } from './guid.js';

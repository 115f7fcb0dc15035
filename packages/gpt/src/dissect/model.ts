import type { DpsArch, PartitionDesignator, PartitionFlags } from '../dps.js';
import type { FsProbe } from '../probe/probe.js';

/** The result of dissecting an image: plain data, safe to JSON.stringify (attributes as hex text). */

/** What a partition is used for once the DPS rules have been applied. */
export type Role = Exclude<PartitionDesignator, 'linux-generic' | 'user-home'>;

/** Mount order of the roles that are mounted (swap and verity never are). */
export const MOUNT_ORDER = ['root', 'usr', 'home', 'srv', 'var', 'tmp', 'xbootldr', 'esp'] as const;
export type MountRole = (typeof MOUNT_ORDER)[number];

export interface DissectedPartition {
  /** Partition number (the M of /dev/loopNpM); null for a file system on the whole image. */
  number: number | null;
  /** Byte offset and size in the image. */
  offset: number;
  size: number;
  /** GPT type GUID, or undefined for MBR and bare file systems. */
  typeGuid?: string;
  /** DPS name of the type (root-x86-64, home...), or undefined when DPS does not define it. */
  typeName?: string;
  /** MBR type byte and boot indicator. */
  mbrType?: number;
  bootable?: boolean;
  /** GPT unique partition GUID. */
  uuid?: string;
  /** GPT partition name. */
  label?: string;
  designator?: PartitionDesignator;
  arch?: DpsArch;
  /** GPT attribute bits as 16 hex digits. */
  attributes?: string;
  flags: PartitionFlags;
  /** What the superblock says, when something was recognised. */
  fs?: FsProbe;
  /** The role this partition plays in the image. */
  role?: Role;
  /** Why the partition has no role (another architecture, no-auto, unknown type...). */
  ignored?: string;
}

export interface DissectedImage {
  /** The path (or name) of the image. */
  image: string;
  size: number;
  sectorSize: number;
  table: 'gpt' | 'mbr' | 'none';
  /** GPT disk GUID. */
  diskGuid?: string;
  /** MBR disk signature (8 hex digits). */
  diskSignature?: string;
  /** The architecture whose root/usr types were looked for. */
  arch: DpsArch | undefined;
  /** Every used entry of the table (or the one bare file system), by number. */
  partitions: DissectedPartition[];
  /** The partition of each role that was found. */
  roles: Partial<Record<Role, DissectedPartition>>;
  /** Set when the image cannot be mounted as an OS tree: why, as a stable code and a sentence. */
  unusable?: { code: 'NO_ROOT' | 'NOT_UNIQUE'; message: string };
  warnings: string[];
}

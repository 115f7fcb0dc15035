import { normalizeGuid } from './guid.js';

/**
 * The Discoverable Partitions Specification: which partition type GUID
 * means what, so that an image can be mounted without an fstab. Only the
 * types sd uses so far; more architectures come with aarch64 support.
 */

export type PartitionDesignator =
  | 'root'
  | 'usr'
  | 'root-verity'
  | 'home'
  | 'srv'
  | 'var'
  | 'tmp'
  | 'swap'
  | 'esp'
  | 'xbootldr'
  | 'linux-generic';

export type DpsArch = 'x86-64' | 'arm64';

export interface PartitionType {
  designator: PartitionDesignator;
  /** Set for the per-architecture types (root, usr, verity). */
  arch?: DpsArch;
  /** Lower-case text form. */
  guid: string;
  /** The name systemd-dissect shows. */
  name: string;
}

export const PARTITION_TYPES: readonly PartitionType[] = [
  { designator: 'root', arch: 'x86-64', guid: '4f68bce3-e8cd-4db1-96e7-fbcaf984b709', name: 'root-x86-64' },
  { designator: 'root', arch: 'arm64', guid: 'b921b045-1df0-41c3-af44-4c6f280d3fae', name: 'root-arm64' },
  { designator: 'usr', arch: 'x86-64', guid: '8484680c-9521-48c6-9c11-b0720656f69e', name: 'usr-x86-64' },
  {
    designator: 'root-verity',
    arch: 'x86-64',
    guid: '2c7357ed-ebd2-46d9-aec1-23d437ec2bf5',
    name: 'root-x86-64-verity',
  },
  { designator: 'home', guid: '933ac7e1-2eb4-4f13-b844-0e14e2aef915', name: 'home' },
  { designator: 'srv', guid: '3b8f8425-20e0-4f3b-907f-1a25a76f98e8', name: 'srv' },
  { designator: 'var', guid: '4d21b016-b534-45c2-a9fb-5c16e091fd2d', name: 'var' },
  { designator: 'tmp', guid: '7ec6f557-3bc5-4aca-b293-16ef5df639d1', name: 'tmp' },
  { designator: 'swap', guid: '0657fd6d-a4ab-43c4-84e5-0933c84b4f4f', name: 'swap' },
  { designator: 'esp', guid: 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b', name: 'esp' },
  { designator: 'xbootldr', guid: 'bc13c2ff-59e6-4262-a352-b275fd6f7172', name: 'xbootldr' },
  { designator: 'linux-generic', guid: '0fc63daf-8483-4772-8e79-3d69d8477de4', name: 'linux-generic' },
];

const byGuid = new Map(PARTITION_TYPES.map((t) => [t.guid, t]));

/** What a partition type GUID means, or undefined for a type DPS does not define (here). */
export function partitionTypeFromGuid(guid: string): PartitionType | undefined {
  return byGuid.get(normalizeGuid(guid));
}

/** The type GUID of a designator; `arch` is needed for root, usr and root-verity. */
export function partitionTypeGuid(designator: PartitionDesignator, arch?: DpsArch): string | undefined {
  return PARTITION_TYPES.find((t) => t.designator === designator && t.arch === arch)?.guid;
}

/** The DPS architecture of the running Node process. */
export function hostDpsArch(): DpsArch | undefined {
  if (process.arch === 'x64') return 'x86-64';
  if (process.arch === 'arm64') return 'arm64';
  return undefined;
}

/** GPT partition attribute bits that DPS gives a meaning. */
export const GPT_ATTR = {
  GROWFS: 1n << 59n,
  READ_ONLY: 1n << 60n,
  NO_AUTO: 1n << 63n,
} as const;

export interface PartitionFlags {
  readOnly: boolean;
  noAuto: boolean;
  growFs: boolean;
}

export function decodePartitionFlags(attributes: bigint): PartitionFlags {
  return {
    readOnly: (attributes & GPT_ATTR.READ_ONLY) !== 0n,
    noAuto: (attributes & GPT_ATTR.NO_AUTO) !== 0n,
    growFs: (attributes & GPT_ATTR.GROWFS) !== 0n,
  };
}

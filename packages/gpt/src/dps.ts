import { normalizeGuid } from './guid.js';

/**
 * The Discoverable Partitions Specification: which partition type GUID
 * means what, so that an image can be mounted without an fstab. Root and
 * usr of the common architectures (so that a foreign image is recognised as
 * such), verity types of x86-64 and arm64, and the shared types.
 */

export type PartitionDesignator =
  | 'root'
  | 'usr'
  | 'root-verity'
  | 'usr-verity'
  | 'root-verity-sig'
  | 'usr-verity-sig'
  | 'home'
  | 'srv'
  | 'var'
  | 'tmp'
  | 'swap'
  | 'esp'
  | 'xbootldr'
  | 'user-home'
  | 'linux-generic';

export type DpsArch = 'x86' | 'x86-64' | 'arm' | 'arm64' | 'riscv64' | 'ppc64-le' | 's390x' | 'loongarch64';

export interface PartitionType {
  designator: PartitionDesignator;
  /** Set for the per-architecture types (root, usr, verity). */
  arch?: DpsArch;
  /** Lower-case text form. */
  guid: string;
  /** The name systemd-dissect shows. */
  name: string;
}

// Per-architecture types: root, usr, then (where known here) their verity and verity-signature partitions.
const ARCH_TYPES: Array<[DpsArch, string, string, ...string[]]> = [
  [
    'x86-64',
    '4f68bce3-e8cd-4db1-96e7-fbcaf984b709',
    '8484680c-9521-48c6-9c11-b0720656f69e',
    '2c7357ed-ebd2-46d9-aec1-23d437ec2bf5',
    '77ff5f63-e7b6-4633-acf4-1565b864c0e6',
    '41092b05-9fc8-4523-994f-2def0408b176',
    'e7bb33fb-06cf-4e81-8273-e543b413e2e2',
  ],
  [
    'arm64',
    'b921b045-1df0-41c3-af44-4c6f280d3fae',
    'b0e01050-ee5f-4390-949a-9101b17104e9',
    'df3300ce-d69f-4c92-978c-9bfb0f38d820',
    '6e11a4e7-fbca-4ded-b9e9-e1a512bb664e',
    '6db69de6-29f4-4758-a7a5-962190f00ce3',
    'c23ce4ff-44bd-4b00-b2d4-b41b3419e02a',
  ],
  ['x86', '44479540-f297-41b2-9af7-d131d5f0458a', '75250d76-8cc6-458e-bd66-bd47cc81a812'],
  ['arm', '69dad710-2ce4-4e3c-b16c-21a1d49abed3', '7d0359a3-02b3-4f0a-865c-654403e70625'],
  ['riscv64', '72ec70a6-cf74-40e6-bd49-4bda08e8f224', 'beaec34b-8442-439b-a40b-984381ed097d'],
  ['ppc64-le', 'c31c45e6-3f39-412e-80fb-4809c4980599', '15bb03af-77e7-4d4a-b12b-c0d084f7491c'],
  ['s390x', '5eead9a9-fe09-4a1e-a1d7-520d00531306', '8a4f5770-50aa-4ed3-874a-99b710db6fea'],
  ['loongarch64', '77055800-792c-4f94-b39a-98c91b762bb6', 'e611c702-575c-4cbe-9a46-434fa0bf7e3f'],
];
const ARCH_DESIGNATORS = [
  'root',
  'usr',
  'root-verity',
  'usr-verity',
  'root-verity-sig',
  'usr-verity-sig',
] as const satisfies readonly PartitionDesignator[];

function archTypes(): PartitionType[] {
  const out: PartitionType[] = [];
  for (const [arch, ...guids] of ARCH_TYPES) {
    guids.forEach((guid, i) => {
      const designator = ARCH_DESIGNATORS[i]!;
      // systemd's names put the architecture in the middle: root-x86-64-verity.
      const [base, ...rest] = designator.split('-');
      out.push({ designator, arch, guid, name: [base, arch, ...rest].join('-') });
    });
  }
  return out;
}

let typesMade: readonly PartitionType[] | undefined;
let byGuidMade: Map<string, PartitionType> | undefined;

/**
 * Every partition type DPS defines (here), made at first use: a program
 * that reads no image (sd-nspawn -D) does not pay for the table.
 */
export function partitionTypes(): readonly PartitionType[] {
  typesMade ??= [
    ...archTypes(),
    { designator: 'home', guid: '933ac7e1-2eb4-4f13-b844-0e14e2aef915', name: 'home' },
    { designator: 'srv', guid: '3b8f8425-20e0-4f3b-907f-1a25a76f98e8', name: 'srv' },
    { designator: 'var', guid: '4d21b016-b534-45c2-a9fb-5c16e091fd2d', name: 'var' },
    { designator: 'tmp', guid: '7ec6f557-3bc5-4aca-b293-16ef5df639d1', name: 'tmp' },
    { designator: 'swap', guid: '0657fd6d-a4ab-43c4-84e5-0933c84b4f4f', name: 'swap' },
    { designator: 'esp', guid: 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b', name: 'esp' },
    { designator: 'xbootldr', guid: 'bc13c2ff-59e6-4262-a352-b275fd6f7172', name: 'xbootldr' },
    { designator: 'user-home', guid: '773f91ef-66d4-49b5-bd83-d683bf40ad16', name: 'user-home' },
    { designator: 'linux-generic', guid: '0fc63daf-8483-4772-8e79-3d69d8477de4', name: 'linux-generic' },
  ];
  return typesMade;
}

const byGuid = () => (byGuidMade ??= new Map(partitionTypes().map((t) => [t.guid, t])));

/** What a partition type GUID means, or undefined for a type DPS does not define (here). */
export function partitionTypeFromGuid(guid: string): PartitionType | undefined {
  return byGuid().get(normalizeGuid(guid));
}

/** The type GUID of a designator; `arch` is needed for root, usr and root-verity. */
export function partitionTypeGuid(designator: PartitionDesignator, arch?: DpsArch): string | undefined {
  return partitionTypes().find((t) => t.designator === designator && t.arch === arch)?.guid;
}

/** The DPS architecture of the running Node process. */
export function hostDpsArch(): DpsArch | undefined {
  const map: Partial<Record<string, DpsArch>> = {
    x64: 'x86-64',
    arm64: 'arm64',
    ia32: 'x86',
    arm: 'arm',
    riscv64: 'riscv64',
    s390x: 's390x',
    loong64: 'loongarch64',
  };
  if (process.arch === 'ppc64' && process.getBuiltinModule('node:os').endianness() === 'LE')
    return 'ppc64-le';
  return map[process.arch];
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

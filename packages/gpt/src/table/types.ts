/** A partition table as read from disk, before any meaning is given to it. */

export interface TableEntry {
  /** 1-based: the GPT entry index + 1, or the MBR slot (1..4); the M of /dev/loopNpM. */
  number: number;
  /** Byte offset in the image. */
  start: number;
  /** Size in bytes. */
  size: number;
  /** GPT: partition type GUID, lower case. */
  typeGuid?: string;
  /** GPT: unique partition GUID, lower case. */
  uuid?: string;
  /** GPT: partition name. */
  name?: string;
  /** GPT: the 64 attribute bits. */
  attributes?: bigint;
  /** MBR: the partition type byte. */
  mbrType?: number;
  /** MBR: the boot indicator is 0x80. */
  bootable?: boolean;
}

export interface PartitionTable {
  kind: 'gpt' | 'mbr';
  /** Logical sector size the table was found with (512 or 4096). */
  sectorSize: number;
  /** GPT: the disk GUID. */
  diskGuid?: string;
  /** MBR: the 32-bit disk signature, as 8 hex digits. */
  diskSignature?: string;
  /** Used entries, by number. */
  entries: TableEntry[];
  /** Things that are odd but not wrong (backup header not at the end of a grown image...). */
  warnings: string[];
}

export interface Extent {
  number: number;
  first: bigint;
  last: bigint;
}

import { SdError } from '@sd/sys';

/**
 * Why an image cannot be read or used. The codes are stable; the messages
 * name the image and the part of it that is wrong.
 */
export type ImageErrorCode =
  /** The file ends before a structure it must hold (header, entries, a partition). */
  | 'TRUNCATED'
  /** A GPT header's own CRC32 does not match. */
  | 'GPT_HEADER_CRC'
  /** The partition entry array's CRC32 does not match its header. */
  | 'GPT_ENTRIES_CRC'
  /** A GPT header field is out of range (size, LBAs, entry count or size). */
  | 'GPT_HEADER_INVALID'
  /** The backup GPT header is missing or does not describe the same table. */
  | 'GPT_BACKUP_MISMATCH'
  /** A GPT header without the protective MBR that must precede it. */
  | 'GPT_NO_PROTECTIVE_MBR'
  /** An MBR partition table that cannot be right (boot flags, sizes). */
  | 'MBR_INVALID'
  /** A partition extends beyond the disk or the table's usable area. */
  | 'PARTITION_OUT_OF_RANGE'
  /** Two partitions share sectors. */
  | 'PARTITION_OVERLAP'
  /** Neither a partition table nor a file system was recognised. */
  | 'NO_TABLE'
  /** No partition qualifies as the root file system. */
  | 'NO_ROOT'
  /** More than one candidate for a role where the specification allows one. */
  | 'NOT_UNIQUE'
  /** A partition holds something that cannot be mounted (yet): LUKS, verity hash data, unknown data. */
  | 'UNSUPPORTED'
  /** The running kernel lacks the file system driver. */
  | 'NO_KERNEL_SUPPORT';

export class ImageError extends SdError {
  declare readonly code: ImageErrorCode;
  /** The image (path) the error is about. */
  readonly image: string;
  constructor(code: ImageErrorCode, image: string, message: string, options?: ErrorOptions) {
    super(code, `${image}: ${message}`, options);
    this.image = image;
  }
}

/**
 * The image pool as sd-machined's bus objects need it (the Manager's image
 * methods and PoolPath/PoolUsage/PoolLimit, the Image objects). The pool
 * library in this folder implements it; the daemon only talks to this
 * interface. Names are validated by the pool (bad names: InvalidArgumentError);
 * a missing image is an SdError with code 'ENOENT'.
 */

export type ImageType = 'directory' | 'subvolume' | 'raw' | 'block';

export interface ImageInfo {
  name: string;
  path: string;
  type: ImageType;
  readOnly: boolean;
  /** Creation and modification times, µs since the epoch (0 when unknown). */
  crtime: bigint;
  mtime: bigint;
  /** Bytes used, total and exclusive (2^64-1 when unknown, as systemd's UINT64_MAX). */
  usage: bigint;
  usageExclusive: bigint;
  /** Quota limits (2^64-1 when none). */
  limit: bigint;
  limitExclusive: bigint;
}

export interface ImagePool {
  /** Where new images go (PoolPath). */
  readonly poolPath: string;
  list(): Promise<ImageInfo[]>;
  get(name: string): Promise<ImageInfo | undefined>;
  remove(name: string): Promise<void>;
  rename(name: string, newName: string): Promise<void>;
  clone(name: string, newName: string, readOnly: boolean): Promise<void>;
  markReadOnly(name: string, readOnly: boolean): Promise<void>;
  setLimit(name: string, bytes: bigint): Promise<void>;
  setPoolLimit(bytes: bigint): Promise<void>;
  poolUsage(): Promise<bigint>;
  poolLimit(): Promise<bigint>;
  /** Removes all images ('all') or the hidden ones ('hidden'); returns what went and its usage. */
  clean(mode: 'all' | 'hidden'): Promise<Array<{ name: string; usage: bigint }>>;
  hostname(name: string): Promise<string>;
  machineId(name: string): Promise<Buffer>;
  machineInfo(name: string): Promise<Record<string, string>>;
  osRelease(name: string): Promise<Record<string, string>>;
}

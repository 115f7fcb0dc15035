import { O } from '../constants.js';
import { SyscallError } from '../errors.js';
import { closeQuietly, open, read, writeAll } from '../fd/fd.js';
import { lazyFunc } from '../ffi/libc.js';
import { copyFileRange, ficlone } from './file.js';

/**
 * Copying the bytes of one open file into another: a reflink (FICLONE)
 * where the file system shares extents, else copy_file_range(2) — in the
 * kernel, without passing the data through user space — else read/write.
 * The async form runs copy_file_range on libuv's thread pool so that many
 * large files copy in parallel while the main thread creates the next ones.
 */

const cfr = lazyFunc('copy_file_range', 'long', ['int', 'void *', 'int', 'void *', 'size_t', 'unsigned int']);

const EINVAL = 22;
const EXDEV = 18;
const ENOSYS = 38;
const EOPNOTSUPP = 95;
const ENOTTY = 25;
const EBADF = 9;
const CHUNK = 1 << 30;

/** What a data copy may use: 'auto' tries a reflink first, 'never' copies, 'always' fails without one. */
export type ReflinkMode = 'auto' | 'never' | 'always';

/** Errnos that mean "this pair of files cannot do that", not "the copy failed". */
const unsupported = (errno: number): boolean =>
  errno === EOPNOTSUPP ||
  errno === EXDEV ||
  errno === EINVAL ||
  errno === ENOTTY ||
  errno === ENOSYS ||
  errno === EBADF;

export type DataMethod = 'reflink' | 'copy_file_range' | 'read_write';

/**
 * State shared by the files of one copy: once the file system refused a
 * reflink or copy_file_range, the next files do not try again.
 */
export class DataCopier {
  reflink: ReflinkMode;
  #canClone: boolean;
  #canCfr = true;
  constructor(reflink: ReflinkMode = 'auto') {
    this.reflink = reflink;
    this.#canClone = reflink !== 'never';
  }

  /** Tries a reflink; true when done. Throws in 'always' mode when the file system has none. */
  tryClone(srcFd: number, dstFd: number, path?: string): boolean {
    if (!this.#canClone) return false;
    const errno = ficlone(dstFd, srcFd);
    if (errno === 0) return true;
    if (!unsupported(errno) || this.reflink === 'always')
      throw new SyscallError('ioctl(FICLONE)', errno, path);
    this.#canClone = false;
    return false;
  }

  /**
   * Copies from the current offsets to end of file, synchronously. Returns
   * the method. With `size` (what a stat just said), a copy that reached it
   * stops without the call that would confirm end of file.
   */
  copySync(srcFd: number, dstFd: number, path?: string, size?: bigint): DataMethod {
    if (this.tryClone(srcFd, dstFd, path)) return 'reflink';
    if (this.#canCfr) {
      try {
        const want = size !== undefined && size > 0n && size < BigInt(CHUNK) ? Number(size) : undefined;
        let done = 0;
        for (;;) {
          const n = copyFileRange(srcFd, dstFd, CHUNK, path);
          if (n <= 0) break;
          done += n;
          if (want !== undefined && done >= want) break;
        }
        return 'copy_file_range';
      } catch (e) {
        if (!(e instanceof SyscallError && unsupported(e.errno))) throw e;
        this.#canCfr = false;
      }
    }
    readWrite(srcFd, dstFd);
    return 'read_write';
  }

  /** Like copySync, with copy_file_range on the thread pool. */
  async copyAsync(srcFd: number, dstFd: number, path?: string): Promise<DataMethod> {
    if (this.tryClone(srcFd, dstFd, path)) return 'reflink';
    if (this.#canCfr) {
      for (;;) {
        const n = await new Promise<number>((resolve, reject) => {
          cfr.async(srcFd, null, dstFd, null, CHUNK, 0, (err: unknown, ret: number | bigint) =>
            err ? reject(err) : resolve(Number(ret)),
          );
        });
        if (n === 0) return 'copy_file_range';
        if (n > 0) continue;
        // errno is not readable after an async call: ask again synchronously (same offsets).
        try {
          while (copyFileRange(srcFd, dstFd, CHUNK, path) > 0);
          return 'copy_file_range';
        } catch (e) {
          if (!(e instanceof SyscallError && unsupported(e.errno))) throw e;
          this.#canCfr = false;
          break;
        }
      }
    }
    readWrite(srcFd, dstFd);
    return 'read_write';
  }
}

function readWrite(srcFd: number, dstFd: number): void {
  const buf = Buffer.allocUnsafe(256 * 1024);
  for (;;) {
    const n = read(srcFd, buf);
    if (n === 0) return;
    if (n < 0) continue;
    writeAll(dstFd, buf.subarray(0, n));
  }
}

/** Copies the bytes of file `src` into a new file `dst` (reflink when possible). For tests and tools. */
export async function copyFileData(
  src: string,
  dst: string,
  reflink: ReflinkMode = 'auto',
): Promise<DataMethod> {
  const s = open(src, O.RDONLY | O.NOFOLLOW);
  let d: number | undefined;
  try {
    d = open(dst, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, 0o600);
    return await new DataCopier(reflink).copyAsync(s, d, src);
  } finally {
    closeQuietly(s, d);
  }
}

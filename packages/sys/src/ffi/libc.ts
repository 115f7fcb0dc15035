import koffi from 'koffi';
import { SyscallError } from '../errors.js';

/** The C library of the host, loaded once per process. */
export const libc = koffi.load('libc.so.6');

export { koffi };

/** The errno of the last synchronous koffi call. Read it immediately after the call. */
export function lastErrno(): number {
  return koffi.errno();
}

/** Throws a SyscallError for `ret < 0` (with errno read now), else returns ret. */
export function check<T extends number | bigint>(syscall: string, ret: T, path?: string): T {
  if (ret < 0) throw new SyscallError(syscall, koffi.errno(), path);
  return ret;
}

/** Like check(), for calls whose "-1 and errno" is the raw `syscall(2)` convention. */
export function checkNum(syscall: string, ret: number | bigint, path?: string): number {
  if (ret < 0) throw new SyscallError(syscall, koffi.errno(), path);
  return Number(ret);
}

/** The address of a Buffer's bytes; the Buffer must stay referenced while the address is used. */
export function addressOf(buf: Buffer | Uint8Array): bigint {
  return koffi.address(buf);
}

import { check, lazyFunc } from '../ffi/libc.js';

/**
 * ioctl(2) request encoding (asm-generic/ioctl.h, the layout of x86_64 and
 * aarch64) and the two ways of calling it: with a struct that the kernel
 * reads or fills (a Buffer passed by address) or with an integer.
 */

const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;

export function ioc(dir: number, type: number, nr: number, size: number): number {
  // dir<<30 overflows int32; keep the request an unsigned number.
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
/** _IO(type, nr) */
export const io = (type: number, nr: number): number => ioc(IOC_NONE, type, nr, 0);
/** _IOR(type, nr, size): the kernel writes `size` bytes. */
export const ior = (type: number, nr: number, size: number): number => ioc(IOC_READ, type, nr, size);
/** _IOW(type, nr, size): the kernel reads `size` bytes. */
export const iow = (type: number, nr: number, size: number): number => ioc(IOC_WRITE, type, nr, size);
/** _IOWR(type, nr, size) */
export const iowr = (type: number, nr: number, size: number): number =>
  ioc(IOC_READ | IOC_WRITE, type, nr, size);

const c = {
  ptr: lazyFunc('ioctl', 'int', ['int', 'unsigned long', 'uint8_t *']),
  int: lazyFunc('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']),
};

/** ioctl with a struct argument: the kernel reads and/or fills `arg` in place. Throws SyscallError(`what`). */
export function ioctlPtr(fd: number, req: number, arg: Buffer, what: string, path?: string): number {
  return check(what, c.ptr(fd, req, arg), path);
}

/** ioctl with an integer (or no) argument. Throws SyscallError(`what`). */
export function ioctlInt(fd: number, req: number, arg: number, what: string, path?: string): number {
  return check(what, c.int(fd, req, arg), path);
}

/** Raw ioctl with a struct argument: the return value, -1 with errno unread. For probing. */
export function ioctlPtrRaw(fd: number, req: number, arg: Buffer): number {
  return c.ptr(fd, req, arg) as number;
}

/** Raw ioctl with an integer argument: the return value, -1 with errno unread. */
export function ioctlIntRaw(fd: number, req: number, arg: number): number {
  return c.int(fd, req, arg) as number;
}

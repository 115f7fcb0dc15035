import { SyscallError } from '../errors.js';
import { koffi, lazyFunc } from '../ffi/libc.js';

/**
 * Extended attributes of open files (f*xattr) and of paths without
 * following a last symlink (l*xattr). Values are raw bytes.
 */

const c = {
  flistxattr: lazyFunc('flistxattr', 'long', ['int', 'uint8_t *', 'size_t']),
  fgetxattr: lazyFunc('fgetxattr', 'long', ['int', 'str', 'uint8_t *', 'size_t']),
  fsetxattr: lazyFunc('fsetxattr', 'int', ['int', 'str', 'uint8_t *', 'size_t', 'int']),
  llistxattr: lazyFunc('llistxattr', 'long', ['str', 'uint8_t *', 'size_t']),
  lgetxattr: lazyFunc('lgetxattr', 'long', ['str', 'str', 'uint8_t *', 'size_t']),
  lsetxattr: lazyFunc('lsetxattr', 'int', ['str', 'str', 'uint8_t *', 'size_t', 'int']),
};

const ERANGE = 34;
const ENODATA = 61;
const EOPNOTSUPP = 95;

type Lister = (buf: Buffer | null, size: number) => number;
type Getter = (name: string, buf: Buffer | null, size: number) => number;

// The first try of a listing reuses one buffer (most files have no attributes, few have many).
const listBuf = Buffer.alloc(256);

function listWith(call: Lister, what: string, path?: string): string[] {
  for (let size = 256; ; ) {
    const buf = size === listBuf.length ? listBuf : Buffer.alloc(size);
    const n = Number(call(buf, size));
    if (n >= 0) return n === 0 ? [] : buf.toString('utf8', 0, n).split('\0').filter(Boolean);
    const errno = koffi.errno();
    if (errno === EOPNOTSUPP) return [];
    if (errno !== ERANGE) throw new SyscallError(what, errno, path);
    const need = Number(call(null, 0));
    if (need < 0) throw new SyscallError(what, koffi.errno(), path);
    size = Math.max(need, size * 2);
  }
}

function getWith(call: Getter, name: string, what: string, path?: string): Buffer | undefined {
  for (let size = 256; ; ) {
    const buf = Buffer.alloc(size);
    const n = Number(call(name, buf, size));
    if (n >= 0) return buf.subarray(0, n);
    const errno = koffi.errno();
    if (errno === ENODATA) return undefined;
    if (errno !== ERANGE) throw new SyscallError(what, errno, path);
    const need = Number(call(name, null, 0));
    if (need < 0) throw new SyscallError(what, koffi.errno(), path);
    size = Math.max(need, size * 2);
  }
}

/** The names of the extended attributes of an open file ([] where the fs has none). */
export function flistxattr(fd: number, path?: string): string[] {
  return listWith((b, s) => c.flistxattr(fd, b, s), 'flistxattr', path);
}

/** The value of one attribute, or undefined when it is not set. */
export function fgetxattr(fd: number, name: string, path?: string): Buffer | undefined {
  return getWith((n, b, s) => c.fgetxattr(fd, n, b, s), name, 'fgetxattr', path);
}

export function fsetxattr(fd: number, name: string, value: Buffer, flags = 0, path?: string): void {
  if (c.fsetxattr(fd, name, value, value.length, flags) < 0)
    throw new SyscallError('fsetxattr', koffi.errno(), path ?? name);
}

/** The attribute names of a path itself (a symlink is not followed). */
export function llistxattr(path: string): string[] {
  return listWith((b, s) => c.llistxattr(path, b, s), 'llistxattr', path);
}

export function lgetxattr(path: string, name: string): Buffer | undefined {
  return getWith((n, b, s) => c.lgetxattr(path, n, b, s), name, 'lgetxattr', path);
}

export function lsetxattr(path: string, name: string, value: Buffer, flags = 0): void {
  if (c.lsetxattr(path, name, value, value.length, flags) < 0)
    throw new SyscallError('lsetxattr', koffi.errno(), path);
}

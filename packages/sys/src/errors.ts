import { type LibcFunction, lazyFunc } from './ffi/libc.js';

/** Number → first name, built at the first error (not at every start: ~0.2 ms). */
let errnoNames: Map<number, string> | undefined;
function namesByNumber(): Map<number, string> {
  if (errnoNames) return errnoNames;
  errnoNames = new Map();
  for (const [name, value] of Object.entries(ERRNO)) if (!errnoNames.has(value)) errnoNames.set(value, name);
  return errnoNames;
}

/**
 * The errno values by name (`ERRNO.ENOENT`): the kernel ABI's numbers (the
 * generic ones, which x86_64 and aarch64 share), the names Node's
 * os.constants.errno has (a test holds them equal), so that no package types
 * them again. A table of our own: node:os is not loaded at start (~0.2 ms).
 */
export const ERRNO = {
  E2BIG: 7,
  EACCES: 13,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  EAFNOSUPPORT: 97,
  EAGAIN: 11,
  EALREADY: 114,
  EBADF: 9,
  EBADMSG: 74,
  EBUSY: 16,
  ECANCELED: 125,
  ECHILD: 10,
  ECONNABORTED: 103,
  ECONNREFUSED: 111,
  ECONNRESET: 104,
  EDEADLK: 35,
  EDESTADDRREQ: 89,
  EDOM: 33,
  EDQUOT: 122,
  EEXIST: 17,
  EFAULT: 14,
  EFBIG: 27,
  EHOSTUNREACH: 113,
  EIDRM: 43,
  EILSEQ: 84,
  EINPROGRESS: 115,
  EINTR: 4,
  EINVAL: 22,
  EIO: 5,
  EISCONN: 106,
  EISDIR: 21,
  ELOOP: 40,
  EMFILE: 24,
  EMLINK: 31,
  EMSGSIZE: 90,
  EMULTIHOP: 72,
  ENAMETOOLONG: 36,
  ENETDOWN: 100,
  ENETRESET: 102,
  ENETUNREACH: 101,
  ENFILE: 23,
  ENOBUFS: 105,
  ENODATA: 61,
  ENODEV: 19,
  ENOENT: 2,
  ENOEXEC: 8,
  ENOLCK: 37,
  ENOLINK: 67,
  ENOMEM: 12,
  ENOMSG: 42,
  ENOPROTOOPT: 92,
  ENOSPC: 28,
  ENOSR: 63,
  ENOSTR: 60,
  ENOSYS: 38,
  ENOTCONN: 107,
  ENOTDIR: 20,
  ENOTEMPTY: 39,
  ENOTSOCK: 88,
  ENOTSUP: 95,
  ENOTTY: 25,
  ENXIO: 6,
  EOPNOTSUPP: 95,
  EOVERFLOW: 75,
  EPERM: 1,
  EPIPE: 32,
  EPROTO: 71,
  EPROTONOSUPPORT: 93,
  EPROTOTYPE: 91,
  ERANGE: 34,
  EROFS: 30,
  ESPIPE: 29,
  ESRCH: 3,
  ESTALE: 116,
  ETIME: 62,
  ETIMEDOUT: 110,
  ETXTBSY: 26,
  EWOULDBLOCK: 11,
  EXDEV: 18,
} as const satisfies Readonly<Record<string, number>>;

/** The symbolic name of an errno value (`EPERM`), or `E<number>` when unknown. */
export function errnoName(errno: number): string {
  return namesByNumber().get(errno) ?? `E${errno}`;
}

/** The errno value of a symbolic name such as `ENOENT`. */
export function errnoValue(name: string): number | undefined {
  return Object.hasOwn(ERRNO, name) ? ERRNO[name as keyof typeof ERRNO] : undefined;
}

/** Base of every error sd throws: a stable machine-readable `code` and a readable message. */
export class SdError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * A failed system call, shaped like Node's own errno exceptions:
 * `code` is the symbolic errno (`EPERM`), `errno` its number, `syscall` the call.
 */
export class SyscallError extends SdError {
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;
  constructor(syscall: string, errno: number, path?: string, options?: ErrorOptions) {
    const code = errnoName(errno);
    super(code, `${syscall}${path === undefined ? '' : ` '${path}'`}: ${code} (${strerror(errno)})`, options);
    this.errno = errno;
    this.syscall = syscall;
    if (path !== undefined) this.path = path;
  }
}

/** Bad input from a caller: a name, a path, a value that cannot be used. */
export class InvalidArgumentError extends SdError {
  constructor(message: string, options?: ErrorOptions) {
    super('EINVAL', message, options);
  }
}

/** The C library's description of an errno value ("No such file or directory"), as strerror(3) gives it. */
export function strerror(errno: number): string {
  // Declared on first use: libc.ts imports this module, so the binding cannot be made at load.
  cStrerror ??= lazyFunc('const char *strerror(int errnum)');
  const text = cStrerror(errno) as string | null;
  return text ?? `errno ${errno}`;
}
let cStrerror: LibcFunction | undefined;

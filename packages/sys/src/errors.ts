import { constants } from 'node:os';
import { type LibcFunction, lazyFunc } from './ffi/libc.js';

/** Number → first name, built at the first error (not at every start: ~0.2 ms). */
let errnoNames: Map<number, string> | undefined;
function namesByNumber(): Map<number, string> {
  if (errnoNames) return errnoNames;
  errnoNames = new Map();
  for (const [name, value] of Object.entries(constants.errno))
    if (!errnoNames.has(value)) errnoNames.set(value, name);
  return errnoNames;
}

/**
 * The errno values by name (`ERRNO.ENOENT`): the kernel ABI's numbers,
 * from Node's table of the host's, so that no package types them again.
 */
export const ERRNO: Readonly<Record<string, number>> & typeof constants.errno = constants.errno;

/** The symbolic name of an errno value (`EPERM`), or `E<number>` when unknown. */
export function errnoName(errno: number): string {
  return namesByNumber().get(errno) ?? `E${errno}`;
}

/** The errno value of a symbolic name such as `ENOENT`. */
export function errnoValue(name: string): number | undefined {
  return (constants.errno as Record<string, number>)[name];
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

import koffi from 'koffi';
import { SyscallError } from '../errors.js';

/** The C library of the host, loaded once per process. */
export const libc = koffi.load('libc.so.6');

export { koffi };

/** A function of libc as koffi declares it. */
export type LibcFunction = ReturnType<typeof libc.func>;
type TypeSpec = Parameters<typeof libc.func>[2];

const BIND = Symbol('bind');
type LazyFunction = LibcFunction & { [BIND]: () => LibcFunction };
/** `.info` of a lazy function: declares it, as reading `.info` of a declared one would need it. */
const LAZY_PROTO = Object.create(Function.prototype, {
  info: {
    get(this: LazyFunction) {
      return this[BIND]().info;
    },
  },
});

/**
 * A libc function declared on its first call, not at import: koffi parses
 * each prototype (≈50 µs apiece), and a program such as `sd-nspawn` calls
 * few of the ~100 functions the library binds. Same signatures as
 * `libc.func()`; `.async()` and `.info` work as on the declared function.
 * A missing symbol therefore throws at the first call, not at import.
 */
export function lazyFunc(definition: string): LibcFunction;
export function lazyFunc(name: string, result: TypeSpec, args: TypeSpec[]): LibcFunction;
export function lazyFunc(...decl: [string] | [string, TypeSpec, TypeSpec[]]): LibcFunction {
  let fn: LibcFunction | undefined;
  const bind = (): LibcFunction =>
    (fn ??= decl.length === 1 ? libc.func(decl[0]) : libc.func(decl[0], decl[1], decl[2]));
  const lazy = ((...args: unknown[]) => (fn ?? bind())(...args)) as LazyFunction;
  // A plain property and a shared prototype, not Object.defineProperties: module top levels declare
  // ~100 of these at every start (measured cold: 150 µs for 97 of them instead of 460 µs).
  Object.setPrototypeOf(lazy, LAZY_PROTO);
  lazy[BIND] = bind;
  lazy.async = (...args: unknown[]) => (fn ?? bind()).async(...args);
  return lazy;
}

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

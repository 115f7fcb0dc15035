import { InvalidArgumentError } from '../errors.js';

/** The parts of a spawn program's steps (see program.ts): arguments, slots, data. */

/** The result of an earlier step (an fd, usually), usable as a later argument. */
export class Slot {
  constructor(readonly index: number) {}
}

/** A pointer field inside a Data's bytes: at `offset`, the address of `target` once placed. */
export interface DataPointer {
  offset: number;
  target: Data;
}

/**
 * Bytes placed in the program's memory; the argument is their address.
 * `pointers` fill 8-byte pointer fields inside the bytes with the addresses
 * of other Data placed in the same memory (a struct that points at a buffer,
 * such as seccomp's sock_fprog), resolved in build().
 */
export class Data {
  constructor(
    readonly bytes: Buffer,
    readonly label?: string,
    readonly pointers: readonly DataPointer[] = [],
  ) {
    for (const p of pointers)
      if (p.offset < 0 || p.offset + 8 > bytes.length)
        throw new InvalidArgumentError(
          `pointer at ${p.offset} lies outside ${bytes.length} bytes of ${label ?? 'data'}`,
        );
  }
}

/**
 * The end of a Data, rounded down to 16 bytes: the first stack pointer of a
 * fork that shares memory and runs on that Data as its stack (a stack grows
 * down; aarch64 wants its stack pointer 16-byte aligned).
 */
export class StackTop {
  constructor(readonly stack: Data) {}
}

/** A NULL-terminated array of pointers to C strings (argv, envp). */
export class StringArray {
  constructor(readonly strings: readonly string[]) {}
}

/** Values only known when spawn() runs: the fds of its pipes. */
export type Placeholder = 'reportFd' | 'syncReadFd' | 'syncWriteFd' | 'forkPidFd';
export class Special {
  constructor(readonly name: Placeholder) {}
}

export type Arg = number | bigint | string | null | Slot | Data | StackTop | StringArray | Special;

export interface StepOptions {
  /** Go on when the call fails. */
  ignoreErrno?: boolean;
  /** Store the result in a new slot and return it. */
  result?: boolean;
  /** What the step is for, in words, for the error when it fails ("overlay on /srv"). */
  label?: string;
}

export interface Step {
  /** Set by the caller: what the step is for, in words. */
  label?: string;
  /** What the step does, for error messages and plan tests: `mount`, `execve`... */
  name: string;
  nr: number;
  args: Arg[];
  ignoreErrno: boolean;
  slot?: Slot;
  /** On a result > 0 (the parent's side of a fork), go on at this step instead of the next. */
  jump?: number;
}

export interface Placeholders {
  reportFd: number;
  syncReadFd?: number;
  syncWriteFd?: number;
  /** Where the parent's side of a fork reports the child's pid (see reportForkedPid). */
  forkPidFd?: number;
}

/** A program laid out in memory that does not move (an ArrayBuffer's backing store). */
export interface BuiltProgram {
  memory: Buffer;
  address: bigint;
}

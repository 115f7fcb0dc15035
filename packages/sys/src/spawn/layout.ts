import { InvalidArgumentError } from '../errors.js';
import {
  type Arg,
  type BuiltProgram,
  Data,
  type Placeholders,
  Slot,
  Special,
  StackTop,
  type Step,
  StringArray,
} from './steps.js';

/**
 * How a spawn program is laid out in memory for the interpreter
 * (native/x86_64.S reads it): a header (step count, report fd, result
 * slots), fixed-size steps, then the data their arguments point at.
 */

export const HEADER_SIZE = 16 + 64 * 8;
export const STEP_SIZE = 64;
export const SLOT_COUNT = 64;
const FLAG_IGNORE = 1;
const FLAG_STORE = 2;
const FLAG_JUMP_IF_POSITIVE = 4;

const TWO_32 = 2 ** 32;

/**
 * Lays `steps` out in memory; `at` fixes the address it will run at
 * instead (for an interpreter outside this process, as the aarch64 test
 * under qemu-user does). Every start builds its programs once, cold: the
 * layout reserves offsets first and then writes strings, blobs and 8-byte
 * fields straight into the one zeroed memory (its zeros are the NULs, the
 * padding and the arrays' NULL ends), numbers without BigInt where they fit.
 */
export function layoutProgram(steps: readonly Step[], values: Placeholders, at?: bigint): BuiltProgram {
  let size = HEADER_SIZE + steps.length * STEP_SIZE;
  const strings: Array<[number, string]> = [];
  const blobs: Array<[number, Uint8Array]> = [];
  // Each placement starts 8-aligned.
  const reserve = (n: number): number => {
    const off = size;
    size += n + ((8 - (n % 8)) % 8);
    return off;
  };
  const placeString = (s: string): number => {
    if (s.includes('\0')) throw new InvalidArgumentError(`string contains a NUL byte: ${JSON.stringify(s)}`);
    const off = reserve(Buffer.byteLength(s) + 1);
    strings.push([off, s]);
    return off;
  };
  // Offsets first; addresses once the memory exists.
  type Resolved = { offset: number } | { value: number | bigint } | { slot: number } | { top: number };
  const arrays: Array<{ at: number; items: number[] }> = [];
  const fixups: Array<{ at: number; target: number }> = [];
  // One Data object is placed once: steps that pass the same Data share
  // its memory (a buffer one step fills and a later step writes out).
  const placed = new Map<Data, number>();
  const placeData = (d: Data): number => {
    const known = placed.get(d);
    if (known !== undefined) return known;
    const targets = d.pointers.map((p) => placeData(p.target));
    const at = reserve(d.bytes.length);
    blobs.push([at, d.bytes]);
    d.pointers.forEach((p, i) => fixups.push({ at: at + p.offset, target: targets[i]! }));
    placed.set(d, at);
    return at;
  };
  const resolve = (a: Arg): Resolved => {
    if (a === null) return { value: 0 };
    if (typeof a === 'number') return { value: Number.isSafeInteger(a) ? a : BigInt.asUintN(64, BigInt(a)) };
    if (typeof a === 'bigint') return { value: BigInt.asUintN(64, a) };
    if (typeof a === 'string') return { offset: placeString(a) };
    if (a instanceof Slot) return { slot: a.index };
    if (a instanceof Data) return { offset: placeData(a) };
    if (a instanceof StackTop) return { top: placeData(a.stack) + a.stack.bytes.length };
    if (a instanceof Special) {
      const v = values[a.name];
      if (v === undefined) throw new InvalidArgumentError(`spawn program needs ${a.name}`);
      return { value: v };
    }
    const items = a.strings.map(placeString);
    const at = reserve((items.length + 1) * 8);
    arrays.push({ at, items });
    return { offset: at };
  };
  const resolvedSteps = steps.map((s) => s.args.map(resolve));

  // Buffer.alloc rather than Buffer.from(new ArrayBuffer): from() compiles at first use, and
  // reading .buffer moves the bytes off V8's heap for good, so their address is stable.
  const memory = Buffer.alloc(size);
  const ab = memory.buffer;
  const u32 = new Uint32Array(ab);
  const u64 = new BigUint64Array(ab);
  const address = at ?? addressOfMemory(memory);
  // User-space addresses are below 2^53 on every architecture sd runs on.
  const base = Number(address);
  if (!Number.isSafeInteger(base))
    throw new InvalidArgumentError(`spawn program address ${address} out of range`);
  // An 8-byte little-endian field (every host sd runs on is little-endian).
  const put = (off: number, v: number | bigint): void => {
    if (typeof v === 'bigint') {
      u64[off / 8] = v;
      return;
    }
    const hi = Math.floor(v / TWO_32);
    u32[off / 4] = v - hi * TWO_32;
    u32[off / 4 + 1] = hi;
  };
  for (const [off, s] of strings) memory.write(s, off);
  for (const [off, b] of blobs) memory.set(b, off);
  for (const { at, items } of arrays) items.forEach((item, i) => put(at + i * 8, base + item));
  for (const { at, target } of fixups) put(at, base + target);
  put(0, steps.length);
  put(8, values.reportFd);
  steps.forEach((s, i) => {
    const at = HEADER_SIZE + i * STEP_SIZE;
    put(at, s.nr);
    let flags = (s.ignoreErrno ? FLAG_IGNORE : 0) | (s.slot ? FLAG_STORE : 0);
    if (s.jump !== undefined) {
      if (!Number.isInteger(s.jump) || s.jump < 0 || s.jump > steps.length || s.jump > 0xffff)
        throw new InvalidArgumentError(`step ${i} jumps to step ${s.jump}, outside the program`);
      flags |= FLAG_JUMP_IF_POSITIVE | (s.jump << 16);
    }
    resolvedSteps[i]!.forEach((r, j) => {
      if ('slot' in r) {
        flags |= 1 << (8 + j);
        put(at + 8 + j * 8, r.slot);
      } else if ('top' in r) put(at + 8 + j * 8, Math.floor((base + r.top) / 16) * 16);
      else put(at + 8 + j * 8, 'offset' in r ? base + r.offset : r.value);
    });
    u32[(at + 56) / 4] = flags;
    u32[(at + 60) / 4] = s.slot?.index ?? 0;
  });
  return { memory, address };
}

let addressOfMemory: (b: Buffer) => bigint = () => {
  throw new Error('spawn program memory needs the native layer');
};

/** Set by the native layer (kept out of this module so plans can be built and tested without koffi). */
export function setAddressResolver(fn: (b: Buffer) => bigint): void {
  addressOfMemory = fn;
}

export function describeArg(a: Arg): string {
  if (a === null) return 'NULL';
  if (typeof a === 'string') return JSON.stringify(a);
  if (typeof a === 'number' || typeof a === 'bigint') return String(a);
  if (a instanceof Slot) return `$${a.index}`;
  if (a instanceof Special) return `<${a.name}>`;
  if (a instanceof StringArray) return `[${a.strings.map((s) => JSON.stringify(s)).join(', ')}]`;
  if (a instanceof StackTop) return `<top of ${describeArg(a.stack).slice(1, -1)}>`;
  return a.label !== undefined ? `<${a.label}>` : `<${a.bytes.length} bytes>`;
}

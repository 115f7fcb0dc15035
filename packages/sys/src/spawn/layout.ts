import { InvalidArgumentError } from '../errors.js';
import {
  type Arg,
  type BuiltProgram,
  Data,
  type Placeholders,
  Slot,
  Special,
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

const NUL = Buffer.of(0);

function cstring(s: string): Buffer {
  if (s.includes('\0')) throw new InvalidArgumentError(`string contains a NUL byte: ${JSON.stringify(s)}`);
  return Buffer.concat([Buffer.from(s), NUL]);
}

/**
 * Lays `steps` out in memory; `at` fixes the address it will run at
 * instead (for an interpreter outside this process, as the aarch64 test
 * under qemu-user does).
 */
export function layoutProgram(steps: readonly Step[], values: Placeholders, at?: bigint): BuiltProgram {
  const data: Buffer[] = [];
  let dataSize = 0;
  const base = HEADER_SIZE + steps.length * STEP_SIZE;
  const place = (b: Buffer): number => {
    const off = base + dataSize;
    data.push(b);
    dataSize += b.length;
    const pad = (8 - (dataSize % 8)) % 8;
    if (pad) {
      data.push(Buffer.alloc(pad));
      dataSize += pad;
    }
    return off;
  };
  // Offsets first; addresses once the memory exists.
  type Resolved = { offset: number } | { value: bigint } | { slot: number };
  const arrays: Array<{ at: number; items: number[] }> = [];
  const fixups: Array<{ at: number; target: number }> = [];
  // One Data object is placed once: steps that pass the same Data share
  // its memory (a buffer one step fills and a later step writes out).
  const placed = new Map<Data, number>();
  const placeData = (d: Data): number => {
    const known = placed.get(d);
    if (known !== undefined) return known;
    const targets = d.pointers.map((p) => placeData(p.target));
    const at = place(d.bytes);
    d.pointers.forEach((p, i) => fixups.push({ at: at + p.offset, target: targets[i]! }));
    placed.set(d, at);
    return at;
  };
  const resolve = (a: Arg): Resolved => {
    if (a === null) return { value: 0n };
    if (typeof a === 'number') return { value: BigInt.asUintN(64, BigInt(a)) };
    if (typeof a === 'bigint') return { value: BigInt.asUintN(64, a) };
    if (typeof a === 'string') return { offset: place(cstring(a)) };
    if (a instanceof Slot) return { slot: a.index };
    if (a instanceof Data) return { offset: placeData(a) };
    if (a instanceof Special) {
      const v = values[a.name];
      if (v === undefined) throw new InvalidArgumentError(`spawn program needs ${a.name}`);
      return { value: BigInt(v) };
    }
    const items = a.strings.map((s) => place(cstring(s)));
    const at = place(Buffer.alloc((items.length + 1) * 8));
    arrays.push({ at, items });
    return { offset: at };
  };
  const resolvedSteps = steps.map((s) => s.args.map(resolve));

  const ab = new ArrayBuffer(base + dataSize);
  const memory = Buffer.from(ab);
  const address = at ?? addressOfMemory(memory);
  let off = base;
  for (const d of data) {
    d.copy(memory, off);
    off += d.length;
  }
  for (const { at, items } of arrays) {
    items.forEach((item, i) => memory.writeBigUInt64LE(address + BigInt(item), at + i * 8));
  }
  for (const { at, target } of fixups) memory.writeBigUInt64LE(address + BigInt(target), at);
  memory.writeBigUInt64LE(BigInt(steps.length), 0);
  memory.writeBigUInt64LE(BigInt(values.reportFd), 8);
  steps.forEach((s, i) => {
    const at = HEADER_SIZE + i * STEP_SIZE;
    memory.writeBigUInt64LE(BigInt(s.nr), at);
    let flags = (s.ignoreErrno ? FLAG_IGNORE : 0) | (s.slot ? FLAG_STORE : 0);
    if (s.jump !== undefined) {
      if (!Number.isInteger(s.jump) || s.jump < 0 || s.jump > steps.length || s.jump > 0xffff)
        throw new InvalidArgumentError(`step ${i} jumps to step ${s.jump}, outside the program`);
      flags |= FLAG_JUMP_IF_POSITIVE | (s.jump << 16);
    }
    resolvedSteps[i]!.forEach((r, j) => {
      let v: bigint;
      if ('slot' in r) {
        flags |= 1 << (8 + j);
        v = BigInt(r.slot);
      } else if ('offset' in r) v = address + BigInt(r.offset);
      else v = r.value;
      memory.writeBigUInt64LE(v, at + 8 + j * 8);
    });
    memory.writeUInt32LE(flags, at + 56);
    memory.writeUInt32LE(s.slot?.index ?? 0, at + 60);
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
  return a.label !== undefined ? `<${a.label}>` : `<${a.bytes.length} bytes>`;
}

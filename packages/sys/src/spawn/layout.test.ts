import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HEADER_SIZE, layoutProgram, STEP_SIZE } from './layout.js';
import {
  type Arg,
  Data,
  type Placeholders,
  Slot,
  Special,
  StackTop,
  type Step,
  StringArray,
} from './steps.js';

/**
 * The layout as plainly as it can be written (one Buffer per placement,
 * writeBigUInt64LE per field): the fast layout must give the same bytes.
 */
function reference(steps: readonly Step[], values: Placeholders, address: bigint): Buffer {
  const chunks: Buffer[] = [];
  let size = HEADER_SIZE + steps.length * STEP_SIZE;
  const place = (b: Buffer): number => {
    const off = size;
    chunks.push(b, Buffer.alloc((8 - (b.length % 8)) % 8));
    size += b.length + ((8 - (b.length % 8)) % 8);
    return off;
  };
  const later: Array<[number, bigint]> = [];
  const placed = new Map<Data, number>();
  const data = (d: Data): number => {
    if (placed.has(d)) return placed.get(d)!;
    const targets = d.pointers.map((p) => data(p.target));
    const at = place(d.bytes);
    d.pointers.forEach((p, i) => later.push([at + p.offset, address + BigInt(targets[i]!)]));
    placed.set(d, at);
    return at;
  };
  const str = (s: string) => place(Buffer.from(`${s}\0`));
  const fields = steps.map((s) =>
    s.args.map((a: Arg): [bigint, boolean] => {
      if (a === null) return [0n, false];
      if (typeof a === 'number' || typeof a === 'bigint') return [BigInt.asUintN(64, BigInt(a)), false];
      if (typeof a === 'string') return [address + BigInt(str(a)), false];
      if (a instanceof Slot) return [BigInt(a.index), true];
      if (a instanceof Data) return [address + BigInt(data(a)), false];
      if (a instanceof Special) return [BigInt(values[a.name]!), false];
      // A stack's end, aligned down to 16 bytes.
      if (a instanceof StackTop)
        return [((address + BigInt(data(a.stack) + a.stack.bytes.length)) / 16n) * 16n, false];
      const items = a.strings.map(str);
      const at = place(Buffer.alloc((items.length + 1) * 8));
      items.forEach((it, i) => later.push([at + i * 8, address + BigInt(it)]));
      return [address + BigInt(at), false];
    }),
  );
  const mem = Buffer.alloc(size);
  Buffer.concat(chunks).copy(mem, HEADER_SIZE + steps.length * STEP_SIZE);
  for (const [at, v] of later) mem.writeBigUInt64LE(v, at);
  mem.writeBigUInt64LE(BigInt(steps.length), 0);
  mem.writeBigUInt64LE(BigInt(values.reportFd), 8);
  steps.forEach((s, i) => {
    const at = HEADER_SIZE + i * STEP_SIZE;
    mem.writeBigUInt64LE(BigInt(s.nr), at);
    let flags = (s.ignoreErrno ? 1 : 0) | (s.slot ? 2 : 0);
    fields[i]!.forEach(([v, slot], j) => {
      if (slot) flags |= 1 << (8 + j);
      mem.writeBigUInt64LE(v, at + 8 + j * 8);
    });
    mem.writeUInt32LE(flags, at + 56);
    mem.writeUInt32LE(s.slot?.index ?? 0, at + 60);
  });
  return mem;
}

const text = fc.string({ unit: 'grapheme', maxLength: 12 }).filter((s) => !s.includes('\0'));
const arg: fc.Arbitrary<Arg> = fc.oneof(
  fc.constant(null),
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
  fc.constantFrom(-1, -100, 2 ** 53 - 1, -(2 ** 53) + 1, 0x7fffffff, 0xffffffff),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
  text,
  fc.nat(63).map((i) => new Slot(i)),
  fc.uint8Array({ maxLength: 40 }).map((b) => new Data(Buffer.from(b))),
  fc.constantFrom(new Special('reportFd'), new Special('syncWriteFd')),
  fc.array(text, { maxLength: 4 }).map((s) => new StringArray(s)),
  fc.nat(40).map((n) => new StackTop(new Data(Buffer.alloc(n)))),
);
const step: fc.Arbitrary<Step> = fc.record({
  name: fc.constant('x'),
  nr: fc.nat(500),
  args: fc.array(arg, { maxLength: 6 }),
  ignoreErrno: fc.boolean(),
});

describe('layoutProgram', () => {
  it('gives the bytes of the plain reference layout for any program', () => {
    fc.assert(
      fc.property(
        fc.array(step, { maxLength: 12 }),
        fc.bigInt({ min: 0n, max: 2n ** 47n }),
        (steps, addr) => {
          const address = addr & ~7n;
          // One Data passed by several steps, with a pointer to another: placed once, pointer resolved.
          const inner = new Data(Buffer.from('inner'));
          const shared = new Data(Buffer.alloc(16), 'shared', [{ offset: 8, target: inner }]);
          const all: Step[] = [...steps, { name: 'y', nr: 1, args: [shared, inner], ignoreErrno: false }];
          all.push({ name: 'z', nr: 2, args: [shared], ignoreErrno: true, slot: new Slot(3) });
          const values = { reportFd: 3, syncWriteFd: 7 };
          expect(layoutProgram(all, values, address).memory.equals(reference(all, values, address))).toBe(
            true,
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});

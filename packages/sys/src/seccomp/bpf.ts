import { InvalidArgumentError } from '../errors.js';

/**
 * A tiny classic-BPF assembler: the instruction set seccomp filters use
 * (linux/filter.h, linux/bpf_common.h). Jumps go forward only, by at most
 * 255 instructions, as the kernel demands.
 */

export const BPF = {
  // classes
  LD: 0x00,
  LDX: 0x01,
  ST: 0x02,
  STX: 0x03,
  ALU: 0x04,
  JMP: 0x05,
  RET: 0x06,
  MISC: 0x07,
  // sizes
  W: 0x00,
  H: 0x08,
  B: 0x10,
  // modes
  IMM: 0x00,
  ABS: 0x20,
  IND: 0x40,
  MEM: 0x60,
  // alu / jmp operations
  ADD: 0x00,
  SUB: 0x10,
  AND: 0x50,
  OR: 0x40,
  RSH: 0x70,
  JA: 0x00,
  JEQ: 0x10,
  JGT: 0x20,
  JGE: 0x30,
  JSET: 0x40,
  // sources
  K: 0x00,
  X: 0x08,
  A: 0x10,
} as const;

/** One struct sock_filter. */
export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export const INSN_SIZE = 8;
/** BPF_MAXINSNS. */
export const MAX_INSNS = 4096;

export function bpfStmt(code: number, k: number): Insn {
  return { code, jt: 0, jf: 0, k: k >>> 0 };
}

export function bpfJump(code: number, k: number, jt: number, jf: number): Insn {
  if (jt < 0 || jt > 255 || jf < 0 || jf > 255)
    throw new InvalidArgumentError(`BPF jump offset out of range (${jt}, ${jf})`);
  return { code, jt, jf, k: k >>> 0 };
}

/** The sock_filter array the kernel reads: u16 code, u8 jt, u8 jf, u32 k, little-endian on our arches. */
export function encodeBpf(insns: readonly Insn[]): Buffer {
  if (insns.length === 0 || insns.length > MAX_INSNS)
    throw new InvalidArgumentError(`a BPF program has 1 to ${MAX_INSNS} instructions, not ${insns.length}`);
  const b = Buffer.alloc(insns.length * INSN_SIZE);
  insns.forEach((i, n) => {
    b.writeUInt16LE(i.code, n * 8);
    b.writeUInt8(i.jt, n * 8 + 2);
    b.writeUInt8(i.jf, n * 8 + 3);
    b.writeUInt32LE(i.k >>> 0, n * 8 + 4);
  });
  return b;
}

export function decodeBpf(b: Buffer): Insn[] {
  if (b.length % INSN_SIZE !== 0)
    throw new InvalidArgumentError(`BPF program of ${b.length} bytes is not whole instructions`);
  const out: Insn[] = [];
  for (let o = 0; o < b.length; o += 8)
    out.push({
      code: b.readUInt16LE(o),
      jt: b.readUInt8(o + 2),
      jf: b.readUInt8(o + 3),
      k: b.readUInt32LE(o + 4),
    });
  return out;
}

const jmpNames: Record<number, string> = {
  [BPF.JEQ]: 'jeq',
  [BPF.JGT]: 'jgt',
  [BPF.JGE]: 'jge',
  [BPF.JSET]: 'jset',
};

/** A readable listing (`ld [4]`, `jeq #0xc000003e 1 0`, `ret #0x7fff0000`), for tests and debugging. */
export function disassemble(insns: readonly Insn[]): string[] {
  return insns.map((i) => {
    const hex = `#0x${i.k.toString(16)}`;
    if (i.code === (BPF.LD | BPF.W | BPF.ABS)) return `ld [${i.k}]`;
    if (i.code === (BPF.RET | BPF.K)) return `ret ${hex}`;
    if (i.code === (BPF.RET | BPF.A)) return 'ret a';
    if (i.code === (BPF.JMP | BPF.JA)) return `ja ${i.k}`;
    if ((i.code & 0x07) === BPF.JMP && (i.code & BPF.X) === 0) {
      const op = jmpNames[i.code & 0xf0];
      if (op) return `${op} ${hex} ${i.jt} ${i.jf}`;
    }
    if (i.code === (BPF.ALU | BPF.AND | BPF.K)) return `and ${hex}`;
    return `.insn 0x${i.code.toString(16)} ${i.jt} ${i.jf} ${hex}`;
  });
}

/** A jump target: a relative count of instructions to skip, or a label defined later. */
export type Target = number | string;

type Pending = { insn: Insn; jt?: string; jf?: string; ja?: string };

/** Builds a program with forward labels, resolved by assemble(). */
export class Assembler {
  private readonly items: Pending[] = [];
  private readonly labels = new Map<string, number>();

  get length(): number {
    return this.items.length;
  }

  /** Defines `name` as the position of the next instruction. */
  label(name: string): this {
    if (this.labels.has(name)) throw new InvalidArgumentError(`BPF label '${name}' defined twice`);
    this.labels.set(name, this.items.length);
    return this;
  }

  /** A = 32-bit word at `offset` of the packet (seccomp_data). */
  ldAbs(offset: number): this {
    return this.push(bpfStmt(BPF.LD | BPF.W | BPF.ABS, offset));
  }

  and(k: number): this {
    return this.push(bpfStmt(BPF.ALU | BPF.AND | BPF.K, k));
  }

  jeq(k: number, jt: Target, jf: Target = 0): this {
    return this.jmp(BPF.JEQ, k, jt, jf);
  }

  jge(k: number, jt: Target, jf: Target = 0): this {
    return this.jmp(BPF.JGE, k, jt, jf);
  }

  jgt(k: number, jt: Target, jf: Target = 0): this {
    return this.jmp(BPF.JGT, k, jt, jf);
  }

  jset(k: number, jt: Target, jf: Target = 0): this {
    return this.jmp(BPF.JSET, k, jt, jf);
  }

  ret(k: number): this {
    return this.push(bpfStmt(BPF.RET | BPF.K, k));
  }

  /** Unconditional jump: its 32-bit offset reaches past the 255 of a conditional one. */
  ja(target: Target): this {
    const p: Pending = { insn: bpfStmt(BPF.JMP | BPF.JA, typeof target === 'number' ? target : 0) };
    if (typeof target === 'string') p.ja = target;
    this.items.push(p);
    return this;
  }

  private jmp(op: number, k: number, jt: Target, jf: Target): this {
    const p: Pending = {
      insn: bpfJump(
        BPF.JMP | op | BPF.K,
        k,
        typeof jt === 'number' ? jt : 0,
        typeof jf === 'number' ? jf : 0,
      ),
    };
    if (typeof jt === 'string') p.jt = jt;
    if (typeof jf === 'string') p.jf = jf;
    this.items.push(p);
    return this;
  }

  private push(insn: Insn): this {
    this.items.push({ insn });
    return this;
  }

  assemble(): Insn[] {
    return this.items.map((p, at) => {
      const rel = (label: string, max = 255): number => {
        const to = this.labels.get(label);
        if (to === undefined) throw new InvalidArgumentError(`BPF label '${label}' is not defined`);
        const d = to - at - 1;
        if (d < 0) throw new InvalidArgumentError(`BPF jump to '${label}' goes backwards`);
        if (d > max)
          throw new InvalidArgumentError(`BPF jump to '${label}' is ${d} instructions away (max ${max})`);
        return d;
      };
      if (p.ja !== undefined) return { ...p.insn, k: rel(p.ja, MAX_INSNS) };
      return {
        ...p.insn,
        jt: p.jt === undefined ? p.insn.jt : rel(p.jt),
        jf: p.jf === undefined ? p.insn.jf : rel(p.jf),
      };
    });
  }
}

import { type Arch, AUDIT_ARCH, hostArch } from '../arch/index.js';
import { PR } from '../constants.js';
import { errnoValue, InvalidArgumentError } from '../errors.js';
import { Data, type SpawnProgram } from '../spawn/program.js';
import { view } from '../view.js';
import { Assembler, encodeBpf, INSN_SIZE, MAX_INSNS } from './bpf.js';
import { findSyscallNumber } from './syscalls.js';

/** Filter return values (linux/seccomp.h); the low 16 bits carry data (the errno). */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

/** What a filter does with a call: one of these 32-bit values. */
export const SeccompAction = {
  ALLOW: SECCOMP_RET.ALLOW,
  KILL_PROCESS: SECCOMP_RET.KILL_PROCESS,
  KILL_THREAD: SECCOMP_RET.KILL_THREAD,
  LOG: SECCOMP_RET.LOG,
  TRAP: SECCOMP_RET.TRAP,
  /** Fail the call with `errno` (a number or a name such as 'EPERM'). */
  ERRNO(errno: number | string): number {
    const n = typeof errno === 'string' ? errnoValue(errno) : errno;
    if (n === undefined || !Number.isInteger(n) || n < 0 || n > 0xffff)
      throw new InvalidArgumentError(`not an errno for a seccomp action: ${errno}`);
    return (SECCOMP_RET.ERRNO | n) >>> 0;
  },
} as const;

/** Offsets in struct seccomp_data. */
export const SECCOMP_DATA = { nr: 0, arch: 4, instructionPointer: 8, args: 16 } as const;

/** x86_64 syscalls with this bit set are x32-ABI calls: another ABI the rules must not be bypassed by. */
const X32_SYSCALL_BIT = 0x40000000;

export interface SeccompRule {
  /** The call: its number on the filter's architecture, or its name. */
  syscall: number | string;
  action: number;
}

export interface FilterSpec {
  /** The architecture the filter admits; defaults to the host's. */
  arch?: Arch;
  /** For calls no rule names. */
  defaultAction: number;
  rules: readonly SeccompRule[];
  /** For calls made through another ABI (another AUDIT_ARCH, x32). Default KILL_PROCESS. */
  badArchAction?: number;
}

/**
 * The sock_filter program for `spec`: check seccomp_data.arch (and on
 * x86_64 the x32 bit) with badArchAction for anything else, load the call
 * number, then one compare-and-return per rule, then the default. Named
 * calls the architecture does not have are skipped (nobody can make them);
 * a name no architecture knows is an error. Two rules for one call with
 * different actions are an error too.
 */
export function buildFilter(spec: FilterSpec): Buffer {
  const arch = spec.arch ?? hostArch();
  const badArch = spec.badArchAction ?? SECCOMP_RET.KILL_PROCESS;
  const actions = new Map<number, number>();
  for (const rule of spec.rules) {
    const nr = resolveSyscall(rule.syscall, arch);
    if (nr === undefined) continue;
    const prev = actions.get(nr);
    if (prev !== undefined && prev !== rule.action)
      throw new InvalidArgumentError(
        `seccomp: two different actions for system call ${String(rule.syscall)}`,
      );
    actions.set(nr, rule.action >>> 0);
  }
  const a = new Assembler();
  a.ldAbs(SECCOMP_DATA.arch).jeq(AUDIT_ARCH[arch], 1, 0).ret(badArch);
  a.ldAbs(SECCOMP_DATA.nr);
  if (arch === 'x86_64') a.jge(X32_SYSCALL_BIT, 0, 1).ret(badArch);
  for (const [nr, action] of actions) {
    if (action === spec.defaultAction >>> 0) continue;
    a.jeq(nr, 0, 1).ret(action);
  }
  a.ret(spec.defaultAction);
  if (a.length > MAX_INSNS)
    throw new InvalidArgumentError(`seccomp filter has ${a.length} instructions (max ${MAX_INSNS})`);
  return encodeBpf(a.assemble());
}

export interface TableFilterSpec {
  arch?: Arch;
  /** The action of each call number that has one. */
  actions: ReadonlyMap<number, number>;
  /** For every number `actions` lacks. */
  defaultAction: number;
  /** For calls made through another ABI (another AUDIT_ARCH, x32). Default KILL_PROCESS. */
  badArchAction?: number;
  /** Checked before the table: a call whose listed arguments all equal these values gets `action`. */
  argumentRules?: ReadonlyArray<{
    nr: number;
    args: ReadonlyArray<{ index: number; value: bigint }>;
    action: number;
  }>;
}

/**
 * Like buildFilter, for large tables: the call numbers are cut into runs of
 * equal action and found by a binary search over the runs' starts (unsigned
 * jge), so a call costs about log2(runs) compares instead of one per rule.
 * A subtree too far for a conditional jump (255) is reached through `ja`.
 */
export function buildTableFilter(spec: TableFilterSpec): Buffer {
  const arch = spec.arch ?? hostArch();
  const badArch = spec.badArchAction ?? SECCOMP_RET.KILL_PROCESS;
  const dflt = spec.defaultAction >>> 0;
  // Runs cover 0..2^32-1: [start, next start) has `action`.
  const runs: Array<{ start: number; action: number }> = [];
  const push = (start: number, action: number) => {
    // A run that would start where the last one does replaces it (number 0).
    if (runs.length && runs[runs.length - 1]!.start === start) runs.pop();
    if (runs.length && runs[runs.length - 1]!.action === action) return;
    runs.push({ start, action });
  };
  push(0, dflt);
  for (const nr of [...spec.actions.keys()].sort((x, y) => x - y)) {
    if (!Number.isInteger(nr) || nr < 0 || nr >= X32_SYSCALL_BIT)
      throw new InvalidArgumentError(`not a system call number: ${nr}`);
    push(nr, spec.actions.get(nr)! >>> 0);
    if (!spec.actions.has(nr + 1)) push(nr + 1, dflt);
  }
  // Sizes of subtrees over n runs (split as emit() does), to know which jumps need a ja.
  const sizes = [0, 1];
  for (let n = 2; n <= runs.length; n++) {
    const left = n >> 1;
    sizes[n] = 1 + (sizes[left]! > 255 ? 1 : 0) + sizes[left]! + sizes[n - left]!;
  }
  const a = new Assembler();
  a.ldAbs(SECCOMP_DATA.arch).jeq(AUDIT_ARCH[arch], 1, 0).ret(badArch);
  a.ldAbs(SECCOMP_DATA.nr);
  if (arch === 'x86_64') a.jge(X32_SYSCALL_BIT, 0, 1).ret(badArch);
  (spec.argumentRules ?? []).forEach((rule, i) => {
    a.jeq(rule.nr, 0, `next${i}`);
    for (const { index, value } of rule.args) {
      if (!Number.isInteger(index) || index < 0 || index > 5)
        throw new InvalidArgumentError(`system call argument index ${index} is not 0 to 5`);
      // 64-bit arguments as two little-endian words.
      a.ldAbs(SECCOMP_DATA.args + 8 * index).jeq(Number(value & 0xffffffffn), 0, `reload${i}`);
      a.ldAbs(SECCOMP_DATA.args + 8 * index + 4).jeq(Number((value >> 32n) & 0xffffffffn), 0, `reload${i}`);
    }
    a.ret(rule.action);
    a.label(`reload${i}`).ldAbs(SECCOMP_DATA.nr);
    a.label(`next${i}`);
  });
  let labels = 0;
  const emit = (lo: number, n: number): void => {
    if (n === 1) {
      a.ret(runs[lo]!.action);
      return;
    }
    const left = n >> 1;
    const right = `r${labels++}`;
    const k = runs[lo + left]!.start;
    if (sizes[left]! <= 255) a.jge(k, right, 0);
    else a.jge(k, 0, 1).ja(right);
    emit(lo, left);
    a.label(right);
    emit(lo + left, n - left);
  };
  emit(0, runs.length);
  if (a.length > MAX_INSNS)
    throw new InvalidArgumentError(`seccomp filter has ${a.length} instructions (max ${MAX_INSNS})`);
  return encodeBpf(a.assemble());
}

function resolveSyscall(s: number | string, arch: Arch): number | undefined {
  if (typeof s === 'number') {
    if (!Number.isInteger(s) || s < 0) throw new InvalidArgumentError(`not a system call number: ${s}`);
    return s;
  }
  const nr = findSyscallNumber(s, arch);
  if (nr !== undefined) return nr;
  const other: Arch = arch === 'x86_64' ? 'aarch64' : 'x86_64';
  if (findSyscallNumber(s, other) === undefined) throw new InvalidArgumentError(`unknown system call '${s}'`);
  return undefined;
}

const SECCOMP_SET_MODE_FILTER = 1;

/** SECCOMP_FILTER_FLAG_* for loadFilterStep. */
export const SECCOMP_FILTER_FLAG = {
  TSYNC: 1,
  LOG: 2,
  SPEC_ALLOW: 4,
  NEW_LISTENER: 8,
  TSYNC_ESRCH: 16,
} as const;

export interface LoadFilterOptions {
  /** Set no_new_privs first: required unless the child has CAP_SYS_ADMIN in its user namespace. */
  noNewPrivs?: boolean;
  flags?: number;
}

/**
 * Appends seccomp(SECCOMP_SET_MODE_FILTER, flags, &sock_fprog) to a spawn
 * program, with the filter bytes and the sock_fprog that points at them
 * placed in the program's memory. Put it last before execve: every later
 * step runs under the filter.
 */
export function loadFilterStep(
  program: SpawnProgram,
  filter: Buffer,
  options: LoadFilterOptions = {},
): SpawnProgram {
  if (filter.length === 0 || filter.length % INSN_SIZE !== 0 || filter.length / INSN_SIZE > MAX_INSNS)
    throw new InvalidArgumentError(
      `seccomp filter of ${filter.length} bytes is not 1 to ${MAX_INSNS} instructions`,
    );
  const insns = new Data(filter, `seccomp filter, ${filter.length / INSN_SIZE} insns`);
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
  const fprog = Buffer.alloc(16);
  view(fprog).setUint16(0, filter.length / INSN_SIZE, true);
  if (options.noNewPrivs) program.prctl(PR.SET_NO_NEW_PRIVS, 1);
  program.syscall('seccomp', program.sys.seccomp, [
    SECCOMP_SET_MODE_FILTER,
    options.flags ?? 0,
    new Data(fprog, 'sock_fprog', [{ offset: 8, target: insns }]),
  ]);
  return program;
}

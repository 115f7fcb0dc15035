import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../../tools/test/fuzz.js';
import { AUDIT_ARCH } from '../arch/index.js';
import { capabilityFromName, NSPAWN_DEFAULT_CAPABILITIES } from '../caps/names.js';
import { decodeBpf, type Insn } from './bpf.js';
import { buildTableFilter, SECCOMP_RET } from './filter.js';
import { expandSyscallGroup, syscallGroupNames } from './groups.js';
import {
  containerAllowedSyscalls,
  containerSeccompFilter,
  NSPAWN_SYSCALL_WITHHELD,
  parseSystemCallFilter,
  SYSCALLS_NEWER_THAN_KNOWN,
} from './policy.js';
import { findSyscallNumber, syscallNames } from './syscalls.js';

/** Runs a classic BPF seccomp program on (arch, nr): the oracle for the generated trees. */
function run(prog: readonly Insn[], arch: number, nr: number, args: readonly bigint[] = []): number {
  let a = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const i = prog[pc]!;
    if (i.code === 0x20) {
      const arg = (args[(i.k - 16) >> 3] ?? 0n) >> (i.k % 8 === 4 ? 32n : 0n);
      a = i.k === 4 ? arch : i.k === 0 ? nr : i.k >= 16 ? Number(arg & 0xffffffffn) : 0;
    } else if (i.code === 0x06) return i.k >>> 0;
    else if (i.code === 0x05) pc += i.k;
    else if (i.code === 0x15) pc += a >>> 0 === i.k ? i.jt : i.jf;
    else if (i.code === 0x35) pc += a >>> 0 >= i.k ? i.jt : i.jf;
    else throw new Error(`unexpected insn 0x${i.code.toString(16)}`);
  }
  throw new Error('fell off the end');
}

const X86 = AUDIT_ARCH.x86_64;
const EPERM = (SECCOMP_RET.ERRNO | 1) >>> 0;
const ENOSYS = (SECCOMP_RET.ERRNO | 38) >>> 0;
const nr = (name: string) => findSyscallNumber(name, 'x86_64')!;
const cap = (name: string) => 1n << BigInt(capabilityFromName(name)!);

describe('syscall groups', () => {
  it("has systemd's groups, nested ones expanded", () => {
    expect(syscallGroupNames()).toContain('@system-service');
    expect(expandSyscallGroup('@mount')).toContain('open_tree');
    const privileged = expandSyscallGroup('@privileged');
    for (const n of ['fanotify_init', 'fanotify_mark', 'open_by_handle_at', 'bpf', 'kexec_load', 'swapon'])
      expect(privileged).toContain(n);
    expect(() => expandSyscallGroup('@nonsense')).toThrow(/unknown system call group '@nonsense'/);
  });
});

describe('the container allow-list', () => {
  const dflt = containerAllowedSyscalls({ capabilities: NSPAWN_DEFAULT_CAPABILITIES }, 'x86_64');

  it('leaves out what systemd-nspawn leaves out, and io_uring and userfaultfd', () => {
    for (const n of [
      'fanotify_init',
      'fanotify_mark',
      'open_by_handle_at',
      'bpf',
      'perf_event_open',
      'kexec_load',
      'kexec_file_load',
      'init_module',
      'finit_module',
      'keyctl',
      'add_key',
      'swapon',
      'quotactl',
      'lookup_dcookie',
      'iopl',
      'ioperm',
      'settimeofday',
      'syslog',
      'pkey_alloc',
      'modify_ldt',
      'uselib',
      ...NSPAWN_SYSCALL_WITHHELD,
    ])
      expect(dflt.has(n), n).toBe(false);
    for (const n of [
      'read',
      'mount',
      'clone3',
      'setns',
      'unshare',
      'ptrace',
      'reboot',
      'vhangup',
      'io_submit',
    ])
      expect(dflt.has(n), n).toBe(true);
  });

  it('adds calls for the capabilities the container keeps, and only for them', () => {
    const none = containerAllowedSyscalls({ capabilities: 0n }, 'x86_64');
    for (const n of ['ptrace', 'reboot', 'vhangup', 'acct', 'init_module', 'iopl', 'mlock', 'clock_settime'])
      expect(none.has(n), n).toBe(false);
    const more = containerAllowedSyscalls(
      {
        capabilities:
          cap('CAP_SYS_TIME') |
          cap('CAP_SYS_MODULE') |
          cap('CAP_SYS_RAWIO') |
          cap('CAP_IPC_LOCK') |
          cap('CAP_SYSLOG'),
      },
      'x86_64',
    );
    for (const n of ['clock_settime', 'settimeofday', 'init_module', 'iopl', 'mlock', 'syslog'])
      expect(more.has(n), n).toBe(true);
    // The dropped-capability version of the default set loses ptrace.
    const noPtrace = containerAllowedSyscalls(
      { capabilities: NSPAWN_DEFAULT_CAPABILITIES & ~cap('CAP_SYS_PTRACE') },
      'x86_64',
    );
    expect(noPtrace.has('ptrace')).toBe(false);
    expect(noPtrace.has('process_vm_readv')).toBe(true); // in @ipc, as in systemd
  });

  it('applies SystemCallFilter= words: names, groups, ~ denials that win', () => {
    const f = (w: string[]) =>
      containerAllowedSyscalls({ capabilities: NSPAWN_DEFAULT_CAPABILITIES, systemCallFilter: w }, 'x86_64');
    expect(f(['open_by_handle_at']).has('open_by_handle_at')).toBe(true);
    const keyring = f(['@keyring']);
    expect(['keyctl', 'add_key', 'request_key'].every((n) => keyring.has(n))).toBe(true);
    const noMount = f(['~@mount']);
    expect(noMount.has('mount')).toBe(false);
    expect(noMount.has('open_tree')).toBe(false);
    expect(noMount.has('read')).toBe(true);
    expect(f(['kill', '~kill']).has('kill')).toBe(false);
    expect(f(['~kill', 'kill']).has('kill')).toBe(false);
    expect(f(['@known']).size).toBe(syscallNames('x86_64').length);
    expect(() => f(['frobnicate'])).toThrow(/unknown system call 'frobnicate'/);
    expect(() => f(['@frobnicate'])).toThrow(/unknown system call group '@frobnicate'/);
    // Calls only other architectures have are accepted and do nothing.
    expect(f(['mmap2']).has('mmap2')).toBe(false);
  });

  it("parses systemd's list syntax: a leading ~ denies the whole list", () => {
    expect(parseSystemCallFilter('@mount  kill')).toEqual(['@mount', 'kill']);
    expect(parseSystemCallFilter('~@mount kill')).toEqual(['~@mount', '~kill']);
    expect(() => parseSystemCallFilter('kill ~mount')).toThrow(/may only start/);
    expect(() => parseSystemCallFilter('~nosuchcall')).toThrow(/unknown system call 'nosuchcall'/);
  });
});

describe('the container filter program', () => {
  it('gives every number the action the policy says (allow, EPERM, ENOSYS beyond the table)', () => {
    const allowed = containerAllowedSyscalls({ capabilities: NSPAWN_DEFAULT_CAPABILITIES });
    const prog = decodeBpf(containerSeccompFilter({ capabilities: NSPAWN_DEFAULT_CAPABILITIES }));
    const byNr = new Map(syscallNames().map((n) => [findSyscallNumber(n)!, n]));
    for (let i = 0; i < 1200; i++) {
      const name = byNr.get(i);
      const newer = name !== undefined && SYSCALLS_NEWER_THAN_KNOWN.includes(name);
      const want =
        name === undefined ? ENOSYS : allowed.has(name) ? SECCOMP_RET.ALLOW : newer ? ENOSYS : EPERM;
      expect(run(prog, X86, i), `${i} ${name}`).toBe(want);
    }
    expect(run(prog, X86, nr('fanotify_mark'))).toBe(EPERM);
    expect(run(prog, X86, nr('io_uring_setup'))).toBe(EPERM);
    // Newer than systemd's list: ENOSYS, so that callers fall back.
    expect(run(prog, X86, nr('statmount'))).toBe(ENOSYS);
    expect(run(prog, X86, nr('setxattrat'))).toBe(ENOSYS);
    // x32 calls and other ABIs (i386) are refused.
    expect(run(prog, X86, 0x40000000 | nr('fanotify_mark'))).toBe(ENOSYS);
    expect(run(prog, X86, 0x40000000)).toBe(ENOSYS);
    expect(run(prog, 0x40000003, nr('read'))).toBe(ENOSYS);
    // socket(AF_NETLINK, *, NETLINK_AUDIT) only: EAFNOSUPPORT, as in systemd-nspawn.
    expect(run(prog, X86, nr('socket'), [16n, 3n, 9n])).toBe((SECCOMP_RET.ERRNO | 97) >>> 0);
    expect(run(prog, X86, nr('socket'), [16n, 3n, 0n])).toBe(SECCOMP_RET.ALLOW);
    expect(run(prog, X86, nr('socket'), [16n | (1n << 32n), 3n, 9n])).toBe(SECCOMP_RET.ALLOW);
    expect(run(prog, X86, nr('socketpair'), [16n, 3n, 9n])).toBe(SECCOMP_RET.ALLOW);
    // Short: a binary search, not one compare per call.
    expect(prog.length).toBeLessThan(200);
  });

  it('is built once per key and reused', () => {
    const a = containerSeccompFilter({
      capabilities: NSPAWN_DEFAULT_CAPABILITIES,
      systemCallFilter: ['@keyring'],
    });
    const b = containerSeccompFilter({
      capabilities: NSPAWN_DEFAULT_CAPABILITIES,
      systemCallFilter: ['@keyring'],
    });
    expect(a).toBe(b);
    const c = containerSeccompFilter({ capabilities: NSPAWN_DEFAULT_CAPABILITIES });
    expect(c).not.toBe(a);
    expect(c.equals(a)).toBe(false);
  });

  it('agrees with its table for random tables (binary search oracle), long jumps included', () => {
    const actions = fc.constantFrom(SECCOMP_RET.ALLOW, EPERM, SECCOMP_RET.LOG, SECCOMP_RET.KILL_PROCESS);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3000 }), actions), { maxLength: 1200 }),
        fc.array(fc.integer({ min: 0, max: 0x3fffffff }), { minLength: 20, maxLength: 20 }),
        (entries, probes) => {
          const table = new Map(entries);
          const prog = decodeBpf(
            buildTableFilter({ arch: 'x86_64', actions: table, defaultAction: ENOSYS, badArchAction: 0 }),
          );
          for (const n of [...table.keys(), ...probes, 0, 3001])
            expect(run(prog, X86, n)).toBe((table.get(n) ?? ENOSYS) >>> 0);
          expect(run(prog, 0xdead, 0)).toBe(0);
        },
      ),
      { numRuns: fuzzRuns(60) },
    );
    const alternating = new Map(
      Array.from({ length: 1000 }, (_, i) => [i, i % 2 ? EPERM : SECCOMP_RET.ALLOW]),
    );
    const prog = decodeBpf(buildTableFilter({ arch: 'x86_64', actions: alternating, defaultAction: ENOSYS }));
    expect(prog.some((i) => i.code === 0x05)).toBe(true);
    for (let n = 0; n < 1001; n++) expect(run(prog, X86, n)).toBe((alternating.get(n) ?? ENOSYS) >>> 0);
  });
});

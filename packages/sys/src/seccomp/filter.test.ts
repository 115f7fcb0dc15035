import { describe, expect, it } from 'vitest';
import { x86_64 } from '../arch/x86_64.js';
import { HEADER_SIZE, SpawnProgram, STEP_SIZE, setAddressResolver } from '../spawn/program.js';
import { Assembler, decodeBpf, disassemble, encodeBpf } from './bpf.js';
import { buildFilter, loadFilterStep, SECCOMP_RET, SeccompAction } from './filter.js';
import { findSyscallNumber, syscallName, syscallNumber } from './syscalls.js';

describe('BPF assembler', () => {
  it('encodes struct sock_filter little-endian', () => {
    const b = encodeBpf(new Assembler().ldAbs(4).jeq(0xc000003e, 1, 0).ret(0x7fff0000).assemble());
    expect(b.toString('hex')).toBe(
      // code=0x20 jt=0 jf=0 k=4 | code=0x15 jt=1 jf=0 k=0xc000003e | code=0x06 k=0x7fff0000
      ['2000', '00', '00', '04000000', '1500', '01', '00', '3e0000c0', '0600', '00', '00', '0000ff7f'].join(
        '',
      ),
    );
    expect(decodeBpf(b)).toEqual([
      { code: 0x20, jt: 0, jf: 0, k: 4 },
      { code: 0x15, jt: 1, jf: 0, k: 0xc000003e },
      { code: 0x06, jt: 0, jf: 0, k: 0x7fff0000 },
    ]);
  });

  it('resolves forward labels and refuses the others', () => {
    const a = new Assembler()
      .ldAbs(0)
      .jeq(1, 'deny', 'ok')
      .jeq(2, 'deny')
      .label('ok')
      .ret(1)
      .label('deny')
      .ret(2);
    expect(disassemble(a.assemble())).toEqual([
      'ld [0]',
      'jeq #0x1 2 1',
      'jeq #0x2 1 0',
      'ret #0x1',
      'ret #0x2',
    ]);
    expect(() => new Assembler().jeq(1, 'nowhere').assemble()).toThrow(/not defined/);
    expect(() => new Assembler().label('back').jeq(1, 'back').assemble()).toThrow(/backwards/);
    const far = new Assembler().jeq(1, 'far');
    for (let i = 0; i < 300; i++) far.ret(0);
    far.label('far').ret(1);
    expect(() => far.assemble()).toThrow(/max 255/);
  });
});

describe('seccomp filters', () => {
  it('builds the documented layout for x86_64', () => {
    const f = buildFilter({
      arch: 'x86_64',
      defaultAction: SeccompAction.ALLOW,
      rules: [
        { syscall: 'mkdir', action: SeccompAction.ERRNO('EPERM') },
        { syscall: 'mkdirat', action: SeccompAction.ERRNO(1) },
        { syscall: 'kexec_load', action: SeccompAction.KILL_PROCESS },
        { syscall: 101, action: SeccompAction.LOG },
        { syscall: 'getpid', action: SeccompAction.ALLOW },
      ],
    });
    expect(disassemble(decodeBpf(f))).toEqual([
      'ld [4]',
      'jeq #0xc000003e 1 0',
      'ret #0x80000000',
      'ld [0]',
      'jge #0x40000000 0 1',
      'ret #0x80000000',
      'jeq #0x53 0 1', // mkdir 83
      'ret #0x50001',
      'jeq #0x102 0 1', // mkdirat 258
      'ret #0x50001',
      'jeq #0xf6 0 1', // kexec_load 246
      'ret #0x80000000',
      'jeq #0x65 0 1', // ptrace 101
      'ret #0x7ffc0000',
      'ret #0x7fff0000',
    ]);
  });

  it('skips calls an arch lacks and rejects unknown names and conflicts', () => {
    const f = buildFilter({
      arch: 'aarch64',
      defaultAction: SECCOMP_RET.ALLOW,
      rules: [
        { syscall: 'mkdir', action: SeccompAction.ERRNO('EPERM') },
        { syscall: 'mkdirat', action: SeccompAction.ERRNO('EPERM') },
      ],
    });
    expect(disassemble(decodeBpf(f))).toEqual([
      'ld [4]',
      'jeq #0xc00000b7 1 0',
      'ret #0x80000000',
      'ld [0]',
      'jeq #0x22 0 1', // mkdirat 34
      'ret #0x50001',
      'ret #0x7fff0000',
    ]);
    expect(() => buildFilter({ defaultAction: 0, rules: [{ syscall: 'frobnicate', action: 0 }] })).toThrow(
      /unknown system call 'frobnicate'/,
    );
    expect(() =>
      buildFilter({
        defaultAction: 0,
        rules: [
          { syscall: 'reboot', action: SeccompAction.ALLOW },
          { syscall: 'reboot', action: SeccompAction.LOG },
        ],
      }),
    ).toThrow(/two different actions/);
    expect(() => SeccompAction.ERRNO('ENOTANERRNO')).toThrow(/not an errno/);
  });

  it('knows the syscall numbers of both arches', () => {
    expect(syscallNumber('kexec_load', 'x86_64')).toBe(246);
    expect(syscallNumber('kexec_load', 'aarch64')).toBe(104);
    expect(syscallNumber('finit_module', 'aarch64')).toBe(273);
    expect(syscallNumber('open_by_handle_at', 'x86_64')).toBe(304);
    expect(syscallNumber('bpf', 'aarch64')).toBe(280);
    expect(syscallNumber('open_tree_attr', 'x86_64')).toBe(467);
    expect(findSyscallNumber('iopl', 'aarch64')).toBeUndefined();
    expect(syscallName(165, 'x86_64')).toBe('mount');
    // The tables agree with the ones spawn programs use.
    for (const [name, nr] of Object.entries(x86_64)) expect(syscallNumber(name, 'x86_64')).toBe(nr);
    expect(() => syscallNumber('fork', 'aarch64')).toThrow(/no system call 'fork' on aarch64/);
  });

  it('places sock_fprog pointing at the filter inside the program memory', () => {
    setAddressResolver(() => 0x10000n);
    const filter = buildFilter({ arch: 'x86_64', defaultAction: SECCOMP_RET.ALLOW, rules: [] });
    const p = new SpawnProgram(x86_64);
    loadFilterStep(p, filter, { noNewPrivs: true });
    expect(p.describe()).toEqual(['prctl(38, 1, 0, 0, 0)', 'seccomp(1, 0, <sock_fprog>)']);
    const { memory } = p.build({ reportFd: 9 });
    const step = HEADER_SIZE + STEP_SIZE;
    expect(memory.readBigUInt64LE(step)).toBe(317n);
    const fprogAt = Number(memory.readBigUInt64LE(step + 8 + 16) - 0x10000n);
    expect(memory.readUInt16LE(fprogAt)).toBe(filter.length / 8);
    const filterAt = Number(memory.readBigUInt64LE(fprogAt + 8) - 0x10000n);
    expect(memory.subarray(filterAt, filterAt + filter.length).equals(filter)).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import { x86_64 } from '../arch/x86_64.js';
import { HEADER_SIZE, ignoredSignals, SpawnProgram, STEP_SIZE, setAddressResolver } from './program.js';

// Plans are data: these tests need neither root nor the native layer.
setAddressResolver(() => 0x1000n);

describe('SpawnProgram', () => {
  it('describes its steps', () => {
    const p = new SpawnProgram(x86_64);
    const fd = p.openTree(-100, '/usr', 1);
    p.moveMount(fd, '', -100, '/root/usr', 4).execve('/bin/sh', ['sh', '-c', 'true'], ['A=b']);
    expect(p.describe()).toEqual([
      'open_tree(-100, "/usr", 1)',
      'move_mount($0, "", -100, "/root/usr", 4)',
      'execve("/bin/sh", ["sh", "-c", "true"], ["A=b"])',
    ]);
  });

  it('lays out steps, slots and data for the interpreter', () => {
    const p = new SpawnProgram(x86_64);
    const fd = p.openTree(-100, '/usr', 1);
    p.close(fd, { ignoreErrno: true }).execve('/bin/sh', ['sh'], []);
    const { memory, address } = p.build({ reportFd: 7 });
    expect(address).toBe(0x1000n);
    expect(memory.readBigUInt64LE(0)).toBe(3n);
    expect(memory.readBigUInt64LE(8)).toBe(7n);
    const step = (i: number) => HEADER_SIZE + i * STEP_SIZE;
    // open_tree stores its result in slot 0
    expect(memory.readBigUInt64LE(step(0))).toBe(428n);
    expect(memory.readUInt32LE(step(0) + 56)).toBe(2);
    expect(memory.readUInt32LE(step(0) + 60)).toBe(0);
    const pathAddr = memory.readBigUInt64LE(step(0) + 16);
    const pathOff = Number(pathAddr - address);
    expect(memory.toString('utf8', pathOff, pathOff + 5)).toBe('/usr\0');
    // close($0), failure ignored: flag bit 0 and "arg 0 is a slot" bit 8
    expect(memory.readBigUInt64LE(step(1))).toBe(3n);
    expect(memory.readUInt32LE(step(1) + 56)).toBe(0x101);
    expect(memory.readBigUInt64LE(step(1) + 8)).toBe(0n);
    // execve argv is a NULL-terminated pointer array into the same memory
    const argv = Number(memory.readBigUInt64LE(step(2) + 16) - address);
    const arg0 = Number(memory.readBigUInt64LE(argv) - address);
    expect(memory.toString('utf8', arg0, arg0 + 3)).toBe('sh\0');
    expect(memory.readBigUInt64LE(argv + 8)).toBe(0n);
  });

  it('refuses NUL bytes, too many arguments and too many slots', () => {
    expect(() => new SpawnProgram(x86_64).mkdir('/a\0b').build({ reportFd: 3 })).toThrow(/NUL/);
    expect(() => new SpawnProgram(x86_64).syscall('x', 1, [1, 2, 3, 4, 5, 6, 7])).toThrow(/at most 6/);
    const p = new SpawnProgram(x86_64);
    for (let i = 0; i < 64; i++) p.openat(-100, '/', 0);
    expect(() => p.openat(-100, '/', 0)).toThrow(/slots/);
  });

  it('needs the sync pipe only when it waits for the parent', () => {
    const p = new SpawnProgram(x86_64);
    expect(p.waitsForParent).toBe(false);
    expect(() => p.waitForParent().build({ reportFd: 3 })).toThrow(/syncWriteFd/);
    expect(p.waitsForParent).toBe(true);
    expect(p.build({ reportFd: 3, syncReadFd: 4, syncWriteFd: 5 }).memory.length).toBeGreaterThan(0);
  });
});

describe('memory sharing', () => {
  it('never for a program that joins another namespace, makes a user namespace or changes its ids', () => {
    expect(new SpawnProgram(x86_64).execve('/bin/true', ['true'], []).canShareMemory).toBe(true);
    expect(new SpawnProgram(x86_64).setresuid(1000).canShareMemory).toBe(false);
    expect(new SpawnProgram(x86_64).setresgid(1000).canShareMemory).toBe(false);
    expect(new SpawnProgram(x86_64).setfsid(1000, 1000).canShareMemory).toBe(false);
    expect(new SpawnProgram(x86_64).setgroups([]).canShareMemory).toBe(true);
    expect(new SpawnProgram(x86_64).setns(5, 0x20000 /* CLONE_NEWNS */).canShareMemory).toBe(false);
    expect(new SpawnProgram(x86_64).setns(5, 0x10000000 /* CLONE_NEWUSER */).canShareMemory).toBe(false);
    expect(new SpawnProgram(x86_64).unshare(0x10000000).canShareMemory).toBe(false);
    expect(new SpawnProgram(x86_64).unshare(0x20000).canShareMemory).toBe(true);
  });

  it('needs its own memory for a user namespace, changed ids or a fork, whatever the caller says (joinsOwnSetup)', () => {
    const P = () => new SpawnProgram(x86_64);
    expect(P().setns(5, 0x20000 /* CLONE_NEWNS */).needsOwnMemory).toBe(false);
    expect(P().setns(5, 0x20000).setresuid(1000).needsOwnMemory).toBe(true);
    expect(P().setns(5, 0x20000).setfsid(1000, 1000).needsOwnMemory).toBe(true);
    expect(P().unshare(0x20000).needsOwnMemory).toBe(false);
    expect(P().setns(5, 0x10000000 /* CLONE_NEWUSER */).needsOwnMemory).toBe(true);
    expect(P().setns(5, 0 /* any type, a user namespace too */).needsOwnMemory).toBe(true);
    expect(P().unshare(0x10000000).needsOwnMemory).toBe(true);
    const forks = P();
    forks.fork(17);
    expect(forks.needsOwnMemory).toBe(true);
  });

  it('places one Data once when several steps pass it', async () => {
    const { Data } = await import('./program.js');
    const p = new SpawnProgram(x86_64);
    const buf = new Data(Buffer.alloc(16), 'buf');
    p.syscall('read', x86_64.read, [3, buf, 16]);
    p.syscall('write', x86_64.write, [4, buf, 16]);
    const built = p.build({ reportFd: 9 });
    const arg = (step: number) => built.memory.readBigUInt64LE(HEADER_SIZE + step * STEP_SIZE + 16);
    expect(arg(0)).toBe(arg(1));
  });
});

describe('ignoredSignals', () => {
  it('reads the ignored set from SigIgn, bit n-1 for signal n', () => {
    const status =
      'Name:\tnode\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\nSigCgt:\t0000000108004a02\n';
    expect(ignoredSignals(status)).toEqual([13]);
    // SIGHUP, SIGINT, SIGQUIT (nohup, a background job) and a real-time signal.
    expect(ignoredSignals('SigIgn:\t0000000400000007\n')).toEqual([1, 2, 3, 35]);
  });

  it("never names SIGKILL, SIGSTOP or glibc's own signals", () => {
    expect(ignoredSignals('SigIgn:\tffffffffffffffff\n')).toHaveLength(60);
    expect(ignoredSignals('SigIgn:\tffffffffffffffff\n')).not.toContain(9);
  });

  it('resets every catchable signal when the set cannot be read', () => {
    const all = ignoredSignals('garbage');
    expect(all).toHaveLength(60);
    expect(all).not.toContain(19);
    expect(all).toContain(64);
  });

  it('makes one step per ignored signal, then the mask', () => {
    const p = new SpawnProgram(x86_64).resetSignals();
    const sigactions = p.describe().filter((d) => d.startsWith('rt_sigaction'));
    // Node ignores SIGPIPE; whatever else this process was started with ignoring.
    expect(sigactions.length).toBe(ignoredSignals().length);
    expect(sigactions).toContain('rt_sigaction(13, <SIG_DFL sigaction>, NULL, 8)');
    expect(p.describe().at(-1)).toMatch(/^rt_sigprocmask\(2, <empty sigset>/);
  });
});

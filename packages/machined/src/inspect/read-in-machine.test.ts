import { SdError } from '@sd/sys';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildReadProgram, checkContents } from './read-in-machine.js';

const statx = (mode: number, size: number) => {
  const b = Buffer.alloc(256);
  b.writeUInt16LE(mode, 28);
  b.writeBigUInt64LE(BigInt(size), 40);
  return b;
};

describe('reading inside a machine', () => {
  it('the reader joins, roots itself in the machine, drops everything, then opens; it never shares memory', () => {
    const p = buildReadProgram({
      pidfd: 5,
      rootFd: 6,
      userns: true,
      files: [{ path: '/etc/os-release', out: 7 }],
      max: 200_000,
    });
    expect(p.canShareMemory).toBe(false);
    const names = p.steps.map((s) => s.name);
    const at = (n: string) => names.indexOf(n);
    expect(p.steps[at('setns')]!.args).toEqual([5, 0x10000000 | 0x20000]);
    expect(at('chroot')).toBeGreaterThan(at('fchdir'));
    expect(at('capset')).toBeGreaterThan(at('setresuid'));
    expect(at('openat')).toBeGreaterThan(at('capset'));
    expect(p.describe()[at('capset')]).toContain('e=0x0 p=0x0 i=0x0');
    // 200 001 bytes in 64 KiB reads: four read/write pairs.
    expect(names.filter((n) => n === 'read').length).toBe(1 + 4); // the sync byte, then the file
    expect(names.at(-1)).toBe('exit_group');
  });

  it('reads several files one after the other, each to its own pipe', () => {
    const p = buildReadProgram({
      pidfd: 5,
      rootFd: 6,
      userns: false,
      files: [
        { path: '/etc/passwd', out: 7 },
        { path: '/etc/group', out: 8 },
      ],
      max: 1000,
    });
    const d = p.describe();
    expect(d.filter((s) => s.startsWith('open ')).map((s) => s.split(':')[0])).toEqual([
      'open /etc/passwd',
      'open /etc/group',
    ]);
    expect(d.filter((s) => s.startsWith('write(7,')).length).toBe(2);
    expect(d.filter((s) => s.startsWith('write(8,')).length).toBe(2);
    expect(p.steps[p.steps.findIndex((s) => s.name === 'setns')]!.args).toEqual([5, 0x20000]);
  });

  it('takes only a regular file within the cap', () => {
    const text = Buffer.from('ID=x\n');
    expect(checkContents('/etc/os-release', Buffer.concat([statx(0o100644, 5), text]), 10)).toBe('ID=x\n');
    expect(() => checkContents('/etc/os-release', statx(0o10644, 0), 10)).toThrow(/not a regular file/);
    expect(() => checkContents('/etc/os-release', statx(0o20644, 0), 10)).toThrow(/not a regular file/);
    expect(() => checkContents('/etc/os-release', statx(0o100644, 11), 10)).toThrow(/larger than 10 bytes/);
    expect(() =>
      checkContents('/etc/os-release', Buffer.concat([statx(0o100644, 0), Buffer.alloc(11)]), 10),
    ).toThrow(/larger than 10 bytes/);
    expect(() => checkContents('/etc/os-release', Buffer.alloc(10), 10)).toThrow(/failed/);
  });

  it('answers any reader output with contents or an SdError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: 400 }), (bytes, max) => {
        try {
          const text = checkContents('/x', Buffer.from(bytes), max);
          expect(Buffer.byteLength(text)).toBeLessThanOrEqual(Math.max(max * 3, bytes.length));
        } catch (e) {
          expect(e).toBeInstanceOf(SdError);
        }
      }),
    );
  });
});

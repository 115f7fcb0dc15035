import { describe, expect, it } from 'vitest';
import { findSyscallNumber } from '../seccomp/syscalls.js';
import { aarch64, x86_64 } from './index.js';

// The spawn tables (numbers typed in for the start path, which must not parse the
// whole seccomp list) agree with the seccomp list taken from the kernel's tables.
describe('system call tables', () => {
  it.each([
    ['x86_64', x86_64],
    ['aarch64', aarch64],
  ] as const)('%s: every entry is the kernel table number', (arch, table) => {
    for (const [name, nr] of Object.entries(table))
      expect([name, nr]).toEqual([name, findSyscallNumber(name, arch)]);
  });
});

import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ERRNO, errnoName, errnoValue, SyscallError } from './errors.js';

describe('ERRNO', () => {
  it("is the host's table as Node has it, name for name", () => {
    expect(ERRNO).toEqual(constants.errno);
  });

  it('names numbers and numbers names, the first name of an alias', () => {
    expect(errnoName(2)).toBe('ENOENT');
    expect(errnoName(11)).toBe('EAGAIN');
    expect(errnoName(4095)).toBe('E4095');
    expect(errnoValue('EEXIST')).toBe(17);
    expect(errnoValue('toString')).toBeUndefined();
    expect(new SyscallError('openat', 2, '/x').message).toBe(
      "openat '/x': ENOENT (No such file or directory)",
    );
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateCgroupPath } from './cgroup/path.js';
import { isDigits } from './digits.js';

// The checks that replaced regexes (each compiles at its first use, at every
// start) say what those regexes said, for any string.

const chars = fc.constantFrom(...'09a/Z:_.@\\-+ \n\u0660\u00e9'.split(''));

describe('checks written without regexes', () => {
  it('isDigits is /^\\d+$/', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: chars })), (s) => isDigits(s) === /^\d+$/.test(s)),
    );
    expect(isDigits('')).toBe(false);
    expect(isDigits('0123')).toBe(true);
    expect(isDigits('\u0660')).toBe(false);
  });

  it('a cgroup path component is refused for its characters exactly where /^[A-Za-z0-9:_.@\\\\-]+$/ fails', () => {
    fc.assert(
      fc.property(fc.string({ unit: chars, minLength: 1, maxLength: 12 }), (seg) => {
        fc.pre(!seg.includes('/') && seg !== '.' && seg !== '..');
        let refusedForChars = false;
        try {
          validateCgroupPath(`machine.slice/${seg}`);
        } catch (e) {
          refusedForChars = /has invalid characters/.test((e as Error).message);
        }
        const regexRefuses = !/^[A-Za-z0-9:_.@\\-]+$/.test(seg) || seg.startsWith('.');
        return refusedForChars === regexRefuses;
      }),
    );
    expect(validateCgroupPath('machine.slice/machine-a\\x2db.scope')).toBe(
      'machine.slice/machine-a\\x2db.scope',
    );
  });
});

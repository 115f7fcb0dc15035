import { escapeUnitName } from '@sd/basic';
import { describe, expect, it } from 'vitest';
import { assertValidMachineName, isValidMachineName, scopeUnitName } from './names.js';

describe('machine names', () => {
  it.each(['a', 'debian-12', 'foo.bar', '.host', 'x'.repeat(64), 'A0'])('accepts %j', (n) =>
    expect(isValidMachineName(n)).toBe(true),
  );
  it.each(['', '-a', 'a-', 'a..b', '.a', 'a.', 'a b', 'a/b', '../x', 'x'.repeat(65), 'ü', 'a_b'])(
    'refuses %j',
    (n) => expect(isValidMachineName(n)).toBe(false),
  );
  it('names the input in the error', () => {
    expect(() => assertValidMachineName('a/b')).toThrow(/Invalid machine name: "a\/b"/);
  });
  it('escapes unit names like systemd', () => {
    expect(escapeUnitName('debian-12')).toBe('debian\\x2d12');
    expect(scopeUnitName('foo.bar')).toBe('machine-foo.bar.scope');
  });
});

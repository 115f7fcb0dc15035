import { describe, expect, it } from 'vitest';
import {
  assertValidMachineName,
  cleanupHostname,
  isValidHostname,
  isValidMachineName,
  machineNameFromPath,
} from './hostname.js';

describe('machine names (systemd hostname rules)', () => {
  it.each(['foo', 'foo-bar', 'foo.bar', 'a', '0', 'container-1.example.com', 'a'.repeat(64)])(
    'accepts %j',
    (n) => {
      expect(isValidMachineName(n)).toBe(true);
    },
  );

  it.each([
    '',
    '-foo',
    'foo-',
    '.foo',
    'foo.',
    'foo..bar',
    'foo-.bar',
    'foo.-bar',
    'foo_bar',
    'foo bar',
    'föö',
    'a/b',
    'a'.repeat(65),
  ])('rejects %j', (n) => {
    expect(isValidMachineName(n)).toBe(false);
  });

  it('accepts .host only as a machine name', () => {
    expect(isValidMachineName('.host')).toBe(true);
    expect(isValidHostname('.host')).toBe(false);
  });

  it('accepts a trailing dot only for an FQDN when asked to', () => {
    // systemd counts the trailing dot itself: "a.b." has two dots, "a." one.
    expect(isValidHostname('a.b.', { trailingDot: true })).toBe(true);
    expect(isValidHostname('a.', { trailingDot: true })).toBe(false);
    expect(isValidHostname('a.b.')).toBe(false);
  });

  it('names the bad input in the error', () => {
    expect(() => assertValidMachineName('bad_name')).toThrow(/"bad_name"/);
    expect(assertValidMachineName('good')).toBe('good');
  });

  it('cleans up names like hostname_cleanup()', () => {
    expect(cleanupHostname('My_Container!')).toBe('MyContainer');
    expect(cleanupHostname('..a..b--c.-d-')).toBe('a.b--c.d');
    expect(cleanupHostname('a'.repeat(100))).toHaveLength(64);
    expect(cleanupHostname('___')).toBe('');
  });

  it('derives a machine name from a path', () => {
    expect(machineNameFromPath('/var/lib/machines/debian-12/')).toBe('debian-12');
    expect(machineNameFromPath('/images/fedora.raw')).toBe('fedora');
    expect(() => machineNameFromPath('/tmp/___')).toThrow(/Cannot derive/);
  });
});

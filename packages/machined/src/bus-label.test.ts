import { describe, expect, it } from 'vitest';
import {
  busLabelEscape,
  busLabelUnescape,
  imageObjectPath,
  MACHINE1_PATH,
  machineObjectPath,
  nameFromObjectPath,
} from './bus-label.js';

describe('bus label escaping', () => {
  // The pairs systemd's own test-bus-marshal checks.
  it.each([
    ['foo123bar', 'foo123bar'],
    ['foo.bar', 'foo_2ebar'],
    ['foo_2ebar', 'foo_5f2ebar'],
    ['', '_'],
    ['_', '_5f'],
    ['1', '_31'],
    [':1', '_3a1'],
  ])('escapes %j as %j and back', (plain, escaped) => {
    expect(busLabelEscape(plain)).toBe(escaped);
    expect(busLabelUnescape(escaped)).toBe(plain);
  });

  it('escapes the UTF-8 bytes of non-ASCII names', () => {
    expect(busLabelEscape('ü')).toBe('_c3_bc');
    expect(busLabelUnescape('_c3_bc')).toBe('ü');
  });

  it('takes invalid escapes literally', () => {
    expect(busLabelUnescape('a_zz')).toBe('a_zz');
    expect(busLabelUnescape('a_2')).toBe('a_2');
    expect(busLabelUnescape('a_')).toBe('a_');
    expect(busLabelUnescape('_2E')).toBe('.');
  });

  it('round-trips arbitrary strings', () => {
    for (const s of ['debian-12', 'a b/c', '.host', 'x'.repeat(64), '0day', '\u{1f600}']) {
      expect(busLabelUnescape(busLabelEscape(s))).toBe(s);
      expect(busLabelEscape(s)).toMatch(/^[A-Za-z0-9_]+$/);
    }
  });

  it('builds and parses object paths', () => {
    expect(machineObjectPath('debian-12')).toBe('/org/freedesktop/machine1/machine/debian_2d12');
    expect(imageObjectPath('.host')).toBe('/org/freedesktop/machine1/image/_2ehost');
    expect(nameFromObjectPath(machineObjectPath('a.b'), `${MACHINE1_PATH}/machine`)).toBe('a.b');
    expect(
      nameFromObjectPath('/org/freedesktop/machine1/image/x', `${MACHINE1_PATH}/machine`),
    ).toBeUndefined();
    expect(nameFromObjectPath(`${MACHINE1_PATH}/machine/a/b`, `${MACHINE1_PATH}/machine`)).toBeUndefined();
  });
});

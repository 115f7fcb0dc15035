import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../tools/test/fuzz.js';
import { IFNAMSIZ, isValidIfname, shortenIfname, vethHostName } from './ifname.js';
import { siphash24 } from './siphash.js';

describe('siphash24', () => {
  // The reference vectors of the SipHash paper: key 00..0f, message 00..(n-1).
  const key = Buffer.from([...Array(16).keys()]);
  it.each([
    [0, 0x726fdb47dd0e0e31n],
    [1, 0x74f839c593dc67fdn],
    [8, 0x93f5f5799a932462n],
    [15, 0xa129ca6149be45e5n],
  ])('matches the reference for %i bytes', (n, expected) => {
    expect(siphash24(Buffer.from([...Array(n).keys()]), key)).toBe(expected);
  });

  it('needs a 16-byte key', () => {
    expect(() => siphash24(Buffer.alloc(1), Buffer.alloc(8))).toThrow(/16 bytes/);
  });
});

describe('veth names', () => {
  it('keeps names that fit', () => {
    expect(vethHostName('debian')).toEqual({ name: 've-debian' });
    expect(vethHostName('debian', { bridge: true })).toEqual({ name: 'vb-debian' });
    expect(vethHostName('a'.repeat(12))).toEqual({ name: `ve-${'a'.repeat(12)}` });
  });

  it('shortens long names to 15 bytes with a hash, keeping the full name as altname', () => {
    const r = vethHostName('a-rather-long-machine-name');
    expect(Buffer.byteLength(r.name)).toBe(IFNAMSIZ - 1);
    expect(r.name.startsWith('ve-a-rather')).toBe(true);
    expect(r.name.slice(11)).toMatch(/^[A-Za-z0-9_-]{4}$/);
    expect(r.altName).toBe('ve-a-rather-long-machine-name');
    expect(isValidIfname(r.name)).toBe(true);
  });

  it('names a long link exactly as systemd-nspawn does', () => {
    // Debian 12's systemd-nspawn 252: "Network interface name 've-a-rather-long-machine-name'
    // has been changed to 've-a-rather4gZZ' to fit length constraints."
    expect(vethHostName('a-rather-long-machine-name').name).toBe('ve-a-rather4gZZ');
  });

  it('gives long names with the same prefix different names', () => {
    const a = vethHostName('a-rather-long-machine-one').name;
    const b = vethHostName('a-rather-long-machine-two').name;
    expect(a).not.toBe(b);
    expect(a.slice(0, 11)).toBe(b.slice(0, 11));
  });

  it('rejects names that are not printable ASCII', () => {
    expect(() => shortenIfname('ve-ü')).toThrow(/"ve-ü"/);
    expect(() => shortenIfname('')).toThrow(/Invalid interface name/);
  });

  it('shortens every long name as systemd does: 11 bytes kept, then the low 24 bits of the keyed hash', () => {
    // The oracle: SipHash-2-4 (checked against the paper's vectors above) under systemd's
    // SHORTEN_IFNAME_HASH_KEY, its low 24 bits as four url-safe base64 characters, big end first.
    const key = Buffer.from('e190a404a8ef4b518cccc33a9f11fca2', 'hex');
    const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const printable = fc.string({
      unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
      minLength: 1,
      maxLength: 140,
    });
    fc.assert(
      fc.property(
        printable.filter((n) => n.length > 0),
        (name) => {
          const r = shortenIfname(name);
          if (name.length <= IFNAMSIZ - 1) {
            expect(r).toEqual({ name });
            return;
          }
          const h = Number(siphash24(Buffer.from(name, 'ascii'), key) & 0xffffffn);
          const tail = [18, 12, 6, 0].map((sh) => b64[(h >> sh) & 63]).join('');
          expect(r.name).toBe(`${name.slice(0, 11)}${tail}`);
          expect(isValidIfname(r.name) || /[/:]/.test(r.name)).toBe(true);
          expect(r.altName).toBe(name.length < 128 ? name : undefined);
        },
      ),
      { numRuns: fuzzRuns(500) },
    );
  });

  it('validates kernel interface names', () => {
    expect(isValidIfname('ve-x')).toBe(true);
    expect(isValidIfname('')).toBe(false);
    expect(isValidIfname('a'.repeat(16))).toBe(false);
    expect(isValidIfname('a/b')).toBe(false);
    expect(isValidIfname('a b')).toBe(false);
    expect(isValidIfname('..')).toBe(false);
  });
});

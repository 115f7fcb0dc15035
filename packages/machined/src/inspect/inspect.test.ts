import { describe, expect, it } from 'vitest';
import { parseAddresses } from './addresses.js';
import { parseEnvFile } from './os-release.js';
import { isIdentity, mapIn, mapOut, parseIdMap } from './uid-map.js';

const ifaddr = (family: number, scope: number, index: number, addr: number[]): Buffer => {
  const b = Buffer.alloc(8 + 4 + 4 * Math.ceil(addr.length / 4));
  b.writeUInt8(family, 0);
  b.writeUInt8(scope, 3);
  b.writeUInt32LE(index, 4);
  b.writeUInt16LE(4 + addr.length, 8);
  b.writeUInt16LE(2 /* IFA_LOCAL */, 10);
  Buffer.from(addr).copy(b, 12);
  return b;
};

describe('machine inspection', () => {
  it('keeps global addresses, IPv4 first, and drops host-scope ones', () => {
    const v6 = [0xfd, 0, ...Array(13).fill(0), 1];
    const list = parseAddresses([
      ifaddr(10, 0, 2, v6),
      ifaddr(2, 254, 1, [127, 0, 0, 1]),
      ifaddr(2, 0, 2, [10, 0, 0, 2]),
    ]);
    expect(list.map((a) => [a.family, [...a.address]])).toEqual([
      [2, [10, 0, 0, 2]],
      [10, v6],
    ]);
  });

  it('parses os-release quoting', () => {
    expect(parseEnvFile('# c\nID=debian\nPRETTY_NAME="Debian \\"12\\""\nX=\'a b\'\nbad line\n')).toEqual({
      ID: 'debian',
      PRETTY_NAME: 'Debian "12"',
      X: 'a b',
    });
  });

  it('maps ids through uid_map', () => {
    const map = parseIdMap('         0     100000      65536\n');
    expect(isIdentity(map)).toBe(false);
    expect(isIdentity(parseIdMap('0 0 4294967295'))).toBe(true);
    expect(mapOut(map, 1000)).toBe(101000);
    expect(mapIn(map, 101000)).toBe(1000);
    expect(mapIn(map, 1000)).toBeUndefined();
    expect(mapOut(map, 70000)).toBeUndefined();
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../tools/test/fuzz.js';
import { generateMac } from './mac.js';
import { formatSubnet, overlaps, parseSubnet, type Subnet } from './pool/ipv4.js';
import { POOLS, pickSubnet } from './pool/pool.js';

describe('POOLS', () => {
  it("are systemd-networkd's private ranges, in its order", () => {
    expect(POOLS).toEqual(['192.168.0.0/16', '172.16.0.0/12', '10.0.0.0/8'].map(parseSubnet));
  });
});

describe('address pool', () => {
  it('picks a /28 or /24 in the private pools, the same one for the same name', () => {
    const a = pickSubnet('web', 28, []);
    expect(a.prefixLength).toBe(28);
    expect(overlaps(a, POOLS[0]!)).toBe(true);
    expect(pickSubnet('web', 28, [])).toEqual(a);
    expect(pickSubnet('zone:web', 24, []).prefixLength).toBe(24);
  });

  it('skips every subnet in use, and moves on to the next pool when one is full', () => {
    const a = pickSubnet('web', 28, []);
    const b = pickSubnet('web', 28, [a]);
    expect(b).not.toEqual(a);
    expect(overlaps(a, b)).toBe(false);
    // A route covering all of 192.168.0.0/16 makes it take 172.16.0.0/12.
    const c = pickSubnet('web', 28, [parseSubnet('192.168.0.0/16')]);
    expect(overlaps(c, parseSubnet('172.16.0.0/12'))).toBe(true);
    const full = POOLS.map((p) => ({ ...p }));
    expect(() => pickSubnet('web', 28, full)).toThrow(/No free \/28 subnet/);
  });

  it('never returns a subnet that overlaps one in use (property)', () => {
    const subnet = fc
      .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 8, max: 32 }))
      .map(([n, p]): Subnet => parseSubnet(`${[24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.')}/${p}`));
    fc.assert(
      fc.property(
        fc.string(),
        fc.constantFrom(24, 28),
        fc.array(subnet, { maxLength: 20 }),
        (seed, len, used) => {
          let s: Subnet;
          try {
            s = pickSubnet(seed, len, used);
          } catch {
            return;
          }
          expect(used.some((u) => overlaps(u, s))).toBe(false);
          expect(POOLS.some((p) => overlaps(p, s))).toBe(true);
          expect(formatSubnet(s)).toMatch(new RegExp(`/${len}$`));
        },
      ),
      { numRuns: fuzzRuns(300) },
    );
  });
});

describe('MAC addresses', () => {
  const id = Buffer.from('3d1219c7c4c5404aaa1f6d2a48adfda4', 'hex');
  it('are stable, unicast and locally administered, different per kind and index', () => {
    const host = generateMac('web', 'host', 0, id);
    expect(generateMac('web', 'host', 0, id)).toBe(host);
    expect(Number.parseInt(host.slice(0, 2), 16) & 3).toBe(2);
    expect(generateMac('web', 'container', 0, id)).not.toBe(host);
    expect(generateMac('web', 'vethExtraHost', 1, id)).not.toBe(generateMac('web', 'vethExtraHost', 2, id));
    expect(generateMac('web', 'host', 0, Buffer.alloc(16))).not.toBe(host);
  });
});

import fc from 'fast-check';
import { type BusType, parseSignature } from './wire.js';

// fast-check arbitraries of D-Bus signatures and values, for the wire and connection tests.

const basic = fc.constantFrom('y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'd', 's', 'o', 'g');

/** A complete signature, nesting bounded; dict keys of `keys`. */
export const signatures = (keys: fc.Arbitrary<string> = basic): fc.Arbitrary<string> =>
  fc
    .letrec<{ sig: string }>((tie) => ({
      sig: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        basic,
        fc.constant('v'),
        tie('sig').map((s) => `a${s}`),
        fc.tuple(keys, tie('sig')).map(([k, v]) => `a{${k}${v}}`),
        fc.array(tie('sig'), { minLength: 1, maxLength: 3 }).map((f) => `(${f.join('')})`),
      ),
    }))
    .sig.filter((s) => s.length <= 60);

export const signatureArb = signatures();

const str = fc.string({ maxLength: 12 }).filter((s) => !s.includes('\0'));
const path = fc
  .array(fc.stringMatching(/^[A-Za-z0-9_]{1,6}$/), { maxLength: 3 })
  .map((p) => `/${p.join('/')}`);

/** A value of type `t` and what unmarshal gives back for it. */
export function valueArb(
  t: BusType,
  sigs: fc.Arbitrary<string> = signatureArb,
): fc.Arbitrary<[unknown, unknown]> {
  const valueArb_ = (u: BusType) => valueArb(u, sigs);
  const same = <T>(a: fc.Arbitrary<T>) => a.map((v) => [v, v] as [unknown, unknown]);
  switch (t.t) {
    case 'y':
      return same(fc.integer({ min: 0, max: 255 }));
    case 'b':
      return same(fc.boolean());
    case 'n':
      return same(fc.integer({ min: -32768, max: 32767 }));
    case 'q':
      return same(fc.integer({ min: 0, max: 65535 }));
    case 'i':
      return same(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
    case 'u':
      return same(fc.integer({ min: 0, max: 2 ** 32 - 1 }));
    case 'x':
      return same(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
    case 't':
      return same(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
    case 'd':
      return same(fc.double({ noNaN: true, noDefaultInfinity: true }));
    case 's':
      return same(str);
    case 'o':
      return same(path.map((p) => (p === '/' ? p : p)));
    case 'g':
      return same(sigs.filter((s) => s.length < 50));
    case 'v':
      return sigs
        .filter((s) => s.length < 30)
        .chain((s) =>
          valueArb_(parseSignature(s)[0]!).map(([v, back]) => [{ signature: s, value: v }, back]),
        );
    case 'a': {
      const of = t.of;
      if (of.t === 'y')
        return fc
          .uint8Array({ maxLength: 20 })
          .map((b) => [Buffer.from(b), Buffer.from(b)] as [unknown, unknown]);
      if (of.t === '{') {
        // Keys as unmarshal gives them: strings; distinct after conversion.
        return fc
          .uniqueArray(fc.tuple(valueArb_(of.key), valueArb_(of.value)), {
            maxLength: 4,
            selector: ([[, k]]) => String(k),
          })
          .map((entries) => [
            new Map(entries.map(([[k], [v]]) => [k, v])),
            Object.fromEntries(entries.map(([[, k], [, v]]) => [String(k), v])),
          ]);
      }
      return fc
        .array(valueArb_(of), { maxLength: 4 })
        .map((xs) => [xs.map((x) => x[0]), xs.map((x) => x[1])]);
    }
    case '(':
      return fc.tuple(...t.of.map(valueArb_)).map((xs) => [xs.map((x) => x[0]), xs.map((x) => x[1])]);
    case '{':
      throw new Error('dict entry outside an array');
  }
}

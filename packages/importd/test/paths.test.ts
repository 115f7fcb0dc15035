import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../tools/test/fuzz.js';
import { entryComponents, entryPath } from '../src/index.js';

/** entryPath's fast scan against its definition, entryComponents(path).join('/'): the same path or the same refusal. */

function outcome(f: () => string): string {
  try {
    return `ok ${f()}`;
  } catch (e) {
    return `refused ${(e as Error).message}`;
  }
}

describe('entryPath', () => {
  it('is entryComponents joined, or refuses as it does', () => {
    for (const p of [
      '',
      '.',
      './',
      '/',
      '//',
      './.',
      '././a',
      '/./a/',
      'a',
      'a/',
      'a//b',
      'a/./b',
      'a/../b',
      '..',
      '../a',
      'a/..',
      '.a/..b/...',
      './usr/bin/ls',
      `${'x'.repeat(86)}/y`,
      `${'é'.repeat(128)}`,
      `${'é'.repeat(86)}`,
      `${'a/'.repeat(700)}b`,
      `${'ab/'.repeat(1400)}c`,
    ])
      expect(outcome(() => entryPath(p))).toBe(outcome(() => entryComponents(p).join('/')));
    const part = fc.oneof(
      fc.constantFrom('', '.', '..', '...', '.a', 'a.', 'usr', 'é', '\u{1F600}'),
      fc.string({ maxLength: 6 }),
      fc.nat({ max: 300 }).map((n) => 'y'.repeat(n)),
      fc.nat({ max: 130 }).map((n) => 'é'.repeat(n)),
    );
    const path = fc.oneof(
      fc.array(part, { maxLength: 8 }).map((a) => a.join('/')),
      fc
        .tuple(
          fc.constantFrom('', '/', './', '//', '././'),
          fc.array(part, { maxLength: 6 }),
          fc.constantFrom('', '/', '//'),
        )
        .map(([a, b, c]) => `${a}${b.join('/')}${c}`),
      fc.nat({ max: 2100 }).map((n) => `${'ab/'.repeat(n)}c`),
      fc.string({ maxLength: 30 }),
    );
    fc.assert(
      fc.property(path, (p) => {
        expect(outcome(() => entryPath(p))).toBe(outcome(() => entryComponents(p).join('/')));
      }),
      { numRuns: fuzzRuns(5000) },
    );
  });
});

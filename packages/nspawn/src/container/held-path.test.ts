import { describe, expect, it } from 'vitest';
import { randomSuffix } from './held-path.js';

// The suffix of a held path's name under /run/sd-nspawn: unguessable, and safe
// in a path and a unit name (no '-' or '_', which base64url has).
describe('randomSuffix', () => {
  it('is 8 characters of [A-Za-z0-9], a new one each time', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const s = randomSuffix();
      expect(s).toMatch(/^[A-Za-z0-9]{8}$/);
      seen.add(s);
    }
    expect(seen.size).toBe(200);
  });
});

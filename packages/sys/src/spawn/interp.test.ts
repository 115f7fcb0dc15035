import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The interpreter's bytes are committed (src/spawn/interp.generated.ts) so that
// installing the package needs no assembler; this proves they are exactly what
// native/*.S assembles to.
describe('spawn interpreter bytes', () => {
  it('match their assembly sources for every architecture', async () => {
    const build = (await import(fileURLToPath(new URL('../../native/build.mjs', import.meta.url)))) as {
      buildAll: () => unknown;
      render: (r: unknown) => string;
    };
    const committed = readFileSync(new URL('./interp.generated.ts', import.meta.url), 'utf8');
    expect(build.render(build.buildAll())).toBe(committed);
  });
});

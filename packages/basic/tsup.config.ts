import { defineConfig } from 'tsup';

// code-cache: a second entry that imports only node:*, so that a CLI's launcher can bundle it
// without the rest of @sd/basic (and @sd/sys, koffi) coming along.
export default defineConfig({
  entry: { index: 'src/index.ts', 'code-cache': 'src/cli/code-cache.ts' },
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});

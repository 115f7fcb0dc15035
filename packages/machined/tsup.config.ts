import { defineConfig } from 'tsup';

// One build for the library and its CLIs, so that one clean cannot race
// another config's output. The CLIs' `#!/usr/bin/env node` is the first
// line of their sources, which esbuild keeps in entry files (a tsup banner
// would land on the library too).
export default defineConfig({
  entry: {
    index: 'src/index.ts',
    machined: 'src/machined.ts',
    machinectl: 'src/machinectl.ts',
    'machined-worker': 'src/machined-worker.ts',
  },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  clean: true,
  sourcemap: true,
  target: 'node20',
});

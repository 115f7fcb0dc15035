import { defineConfig } from 'tsup';

export default defineConfig({
  // The copy helper is a process of its own (copy/helper.ts starts it from next to the bundle).
  entry: { index: 'src/index.ts', 'copy-helper': 'src/copy/helper-main.ts' },
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});

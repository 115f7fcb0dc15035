import { defineConfig } from 'tsup';
import {
  asciiBundle,
  cjsImportMetaUrl,
  koffiFastLoad,
  prewrapCjs,
  sdModulesArePure,
} from '../../tools/build/cli-bundle.js';

// The library: ESM with .d.ts, dependencies external. The CLI: one CommonJS
// file with @sd/* bundled in and tree-shaken, so that a start resolves and
// compiles one file instead of walking package exports through the ESM
// loader (measured: ~30 ms of sd-nspawn's start). Both write to dist/; the
// build script cleans it first (two configs run in parallel, and one's clean
// would race the other's output). The bin, sd-nspawn.cjs, is a launcher that
// runs cli.cjs through @sd/basic's V8 code cache (measured: ~14 ms less CPU
// per start); it keeps the `#!/usr/bin/env node` of its source.
export default defineConfig([
  {
    entry: { index: 'src/index.ts' },
    format: ['esm'],
    dts: true,
    clean: false,
    sourcemap: true,
    target: 'node20',
  },
  {
    entry: { cli: 'src/cli.ts', 'sd-nspawn': 'src/bin.ts' },
    format: ['cjs'],
    outExtension: () => ({ js: '.cjs' }),
    clean: false,
    sourcemap: true,
    target: 'node20',
    shims: false,
    noExternal: [/^@sd\//],
    // koffi: through koffiFastLoad (its native module loaded directly), so not in `external`.
    external: ['dbus-next'],
    esbuildPlugins: [koffiFastLoad as never, sdModulesArePure as never, asciiBundle as never],
    plugins: [prewrapCjs('cli.cjs')],
    // An ASCII bundle is read as a one-byte string, without UTF-8 decoding (runCached).
    esbuildOptions: (o) => {
      o.charset = 'ascii';
      cjsImportMetaUrl(o);
    },
  },
]);

import { fileURLToPath } from 'node:url';
import { defineConfig } from 'tsup';
import {
  asciiBundle,
  cliBundle,
  koffiFastLoad,
  prewrapCjs,
  sdModulesArePure,
} from '../../tools/build/cli-bundle.js';
import { type LazyBundle, lazyBundleMain, lazyBundleSide } from '../../tools/build/lazy-bundle.js';

// What a start loads only when it asks for a network of its own or a disk
// image (tools/build/lazy-bundle.ts): dist/extras.cjs, beside cli.cjs.
const extras: LazyBundle = {
  root: fileURLToPath(new URL('.', import.meta.url)).replace(/\/$/, ''),
  loader: 'src/extras-load.ts',
  exportName: 'extras',
  entry: 'src/extras.ts',
  file: 'extras.cjs',
  lazy: [
    '@sd/networkd-veth',
    '@sd/gpt',
    'src/extras.ts',
    'src/network/network.ts',
    'src/network/dhcp.ts',
    'src/network/zone.ts',
    'src/container/image.ts',
  ],
};

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
  cliBundle({
    entry: { cli: 'src/cli.ts', 'sd-nspawn': 'src/bin.ts' },
    esbuildPlugins: [
      lazyBundleMain(extras) as never,
      koffiFastLoad as never,
      sdModulesArePure as never,
      asciiBundle as never,
    ],
    plugins: [prewrapCjs('cli.cjs')],
  }),
  cliBundle({
    entry: { extras: 'src/extras.ts' },
    esbuildPlugins: [lazyBundleSide(extras) as never, koffiFastLoad as never, asciiBundle as never],
    plugins: [prewrapCjs('extras.cjs')],
  }),
]);

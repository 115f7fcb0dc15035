import { defineConfig } from 'tsup';
import {
  asciiBundle,
  cliBundle,
  koffiFastLoad,
  prewrapCjs,
  type Resolver,
  sdModulesArePure,
} from '../../tools/build/cli-bundle.js';

// machinectl's pty forwarder (login, shell) needs koffi: a bundle of its own that the CLI
// requires only for those verbs (bundled in, it would make esbuild wrap @sd/sys lazily as a
// whole, and every start would then initialise all of it).
const ptyApart = {
  name: 'pty-apart',
  setup(build: Resolver) {
    build.onResolve({ filter: /^\.\/pty\.js$/ }, () => ({ path: './machinectl-pty.cjs', external: true }));
  },
};

export default defineConfig([
  {
    entry: {
      index: 'src/index.ts',
      machined: 'src/machined.ts',
      'machined-worker': 'src/machined-worker.ts',
      // Loaded by @sd/sys's copy helper process by URL (transfer/copy-jobs.ts COPY_JOBS_MODULE).
      'copy-jobs': 'src/transfer/copy-jobs.ts',
    },
    format: ['esm'],
    dts: { entry: { index: 'src/index.ts' } },
    clean: false,
    sourcemap: true,
    target: 'node20',
  },
  cliBundle({
    entry: {
      'machinectl-cli': 'src/machinectl.ts',
      machinectl: 'src/machinectl-bin.ts',
      'machinectl-pty': 'src/machinectl/pty.ts',
    },
    external: ['usocket'],
    esbuildPlugins: [
      ptyApart as never,
      koffiFastLoad as never,
      sdModulesArePure as never,
      asciiBundle as never,
    ],
    plugins: [prewrapCjs('machinectl-cli.cjs')],
    // import() of the pty bundle as require(): resolved next to the bundle, by Node's CJS loader.
    esbuildOptions(o) {
      o.supported = { ...o.supported, 'dynamic-import': false };
    },
  }),
]);

import { defineConfig } from 'tsup';

// The modules of the other workspace packages bundled into machinectl, taken as free of side
// effects: a module none of whose exports machinectl uses is left out with its top level
// (@sd/sys's koffi.load of libc among them), so that machinectl list does not load koffi.
interface Resolver {
  onResolve(
    o: { filter: RegExp },
    f: (a: {
      path: string;
      kind: string;
      resolveDir: string;
      importer: string;
      pluginData?: unknown;
    }) => unknown,
  ): void;
  resolve(
    path: string,
    o: { kind: string; resolveDir: string; importer: string; pluginData: unknown },
  ): Promise<{ path: string; errors: unknown[] }>;
}
const ONCE = Symbol('sd-modules-are-pure');
const sdModulesArePure = {
  name: 'sd-modules-are-pure',
  setup(build: Resolver) {
    build.onResolve({ filter: /.*/ }, async (a) => {
      if (a.pluginData === ONCE || a.kind === 'entry-point') return undefined;
      const r = await build.resolve(a.path, {
        kind: a.kind,
        resolveDir: a.resolveDir,
        importer: a.importer,
        pluginData: ONCE,
      });
      if (r.errors.length > 0 || !/\/packages\/(sys|basic)\/(src|dist)\//.test(r.path)) return undefined;
      return { path: r.path, sideEffects: false };
    });
  },
};

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
    },
    format: ['esm'],
    dts: { entry: { index: 'src/index.ts' } },
    clean: false,
    sourcemap: true,
    target: 'node20',
  },
  {
    entry: {
      'machinectl-cli': 'src/machinectl.ts',
      machinectl: 'src/machinectl-bin.ts',
      'machinectl-pty': 'src/machinectl/pty.ts',
    },
    format: ['cjs'],
    outExtension: () => ({ js: '.cjs' }),
    clean: false,
    sourcemap: true,
    target: 'node20',
    shims: true,
    noExternal: [/^@sd\//],
    external: ['koffi', 'dbus-next', 'usocket'],
    esbuildPlugins: [ptyApart as never, sdModulesArePure as never],
    // import() of the pty bundle as require(): resolved next to the bundle, by Node's CJS loader.
    esbuildOptions(o) {
      o.supported = { ...o.supported, 'dynamic-import': false };
    },
  },
]);

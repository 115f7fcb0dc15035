import { Module } from 'node:module';
import { basename } from 'node:path';

/**
 * What the CLI bundles (tsup configs of sd-nspawn and machinectl) share: an
 * esbuild plugin that takes the modules of @sd/sys and @sd/basic bundled
 * into a CLI as free of side effects, so that a module none of whose exports
 * the CLI uses is left out with its top level (@sd/sys's koffi.load of libc
 * among them): machinectl list then never loads koffi, and sd-nspawn's
 * bundle runs less at start.
 */
export interface Resolver {
  onResolve(o: { filter: RegExp }, f: (a: ImportArgs) => unknown): void;
  resolve(
    path: string,
    o: { kind: string; resolveDir: string; importer: string; pluginData: unknown },
  ): Promise<{ path: string; errors: unknown[] }>;
}
/**
 * The pluginData of a resolution a plugin asks for itself (build.resolve):
 * one mark for every plugin here, so that two of them never ask each other
 * back and forth.
 */
const RESOLVING = Symbol('sd-resolving');

/** What esbuild passes an onResolve callback. */
export interface ImportArgs {
  path: string;
  kind: string;
  resolveDir: string;
  importer: string;
  pluginData?: unknown;
}

/**
 * Calls `f` for every import but the entry points, with the file esbuild
 * resolves it to (asked once, through the other plugins); `f` returns what
 * an onResolve callback returns.
 */
export function onEveryImport(
  build: Resolver,
  f: (a: ImportArgs, r: { path: string; errors: unknown[] }) => unknown,
): void {
  build.onResolve({ filter: /.*/ }, async (a) => {
    if (a.pluginData === RESOLVING || a.kind === 'entry-point') return undefined;
    const r = await build.resolve(a.path, {
      kind: a.kind,
      resolveDir: a.resolveDir,
      importer: a.importer,
      pluginData: RESOLVING,
    });
    return f(a, r);
  });
}

export const sdModulesArePure = {
  name: 'sd-modules-are-pure',
  setup(build: Resolver) {
    onEveryImport(build, (_a, r) =>
      r.errors.length > 0 || !/\/packages\/(sys|basic)\/(src|dist)\//.test(r.path)
        ? undefined
        : { path: r.path, sideEffects: false },
    );
  },
};

const KOFFI_LOAD = new URL('./koffi-load.cjs', import.meta.url).pathname;

/**
 * koffi in a CLI bundle comes through koffi-load.cjs: its native module
 * loaded directly (~1 ms) instead of through koffi's entry (~8 ms); koffi's
 * entry stays the fallback, external as before. Put it before
 * sdModulesArePure, and leave koffi out of tsup's `external`, which would
 * claim it first.
 */
export const koffiFastLoad = {
  name: 'koffi-fast-load',
  setup(build: Resolver) {
    build.onResolve({ filter: /^koffi$/ }, (a) =>
      a.importer === KOFFI_LOAD ? { path: 'koffi', external: true } : { path: KOFFI_LOAD },
    );
  },
};

interface EndResult {
  outputFiles?: Array<{ path: string; text: string }>;
}

/**
 * Fails the build when a CLI bundle is not pure ASCII. runCached reads an
 * ASCII bundle as a one-byte string; one other character (an em dash in a
 * comment, which charset=ascii leaves alone) turns 500 KB into a UTF-8
 * decode and a two-byte string on every start (measured: 8.5 M instructions,
 * ~5% of `sd-nspawn --version`).
 */
export const asciiBundle = {
  name: 'ascii-bundle',
  setup(build: { onEnd(f: (r: EndResult) => void): void }) {
    build.onEnd((r) => {
      for (const f of r.outputFiles ?? []) {
        if (!f.path.endsWith('.cjs')) continue;
        const at = f.text.search(/[^\x00-\x7f]/);
        if (at < 0) continue;
        const line = f.text.slice(0, at).split('\n').length;
        const text = f.text.split('\n')[line - 1]?.trim().slice(0, 120);
        throw new Error(
          `${f.path}:${line}: a character outside ASCII in a CLI bundle (write it in ASCII in the source): ${text}`,
        );
      }
    });
  },
};

const IMPORT_META_URL = new URL('./import-meta-url.js', import.meta.url).pathname;

/**
 * import.meta.url in a CommonJS CLI bundle as a plain string (import-meta-url.js)
 * instead of tsup's shim (`shims: false` with this), which constructs a URL at
 * every start.
 */
export function cjsImportMetaUrl(o: { define?: Record<string, string>; inject?: string[] }): void {
  o.define = { ...o.define, 'import.meta.url': 'importMetaUrl' };
  o.inject = [...(o.inject ?? []), IMPORT_META_URL];
}

/**
 * A tsup plugin that builds the CLI bundles named (file names in dist/)
 * already inside Node's CommonJS function wrapper, as runCached
 * (@sd/basic/code-cache) then compiles them without wrapping them at every
 * start (a copy of the whole source). The wrapper goes on the first line,
 * before its "use strict", and the end after the last: no line moves, and
 * the source map stays true. Such a file is for runCached only: Node running
 * it directly would only evaluate a function expression.
 */
export function prewrapCjs(...files: string[]) {
  const [start, end] = (Module as unknown as { wrapper: [string, string] }).wrapper;
  return {
    name: 'prewrap-cjs',
    renderChunk(code: string, info: { path: string }) {
      if (!files.includes(basename(info.path))) return undefined;
      if (!code.startsWith('"use strict";'))
        throw new Error(`${info.path}: a prewrapped bundle must start with "use strict" (no hashbang)`);
      return { code: `${start}${code}${end}\n` };
    },
  };
}

/**
 * The tsup options of a CLI bundle: one CommonJS file per entry with @sd/*
 * bundled in, dbus-next left to npm, ASCII (asciiBundle: read as a one-byte
 * string), import.meta.url as a string. koffi comes through koffiFastLoad
 * (its native module loaded directly), so it is not in `external`.
 */
export function cliBundle<T extends { esbuildOptions?: (o: EsbuildOptions) => void; external?: string[] }>(
  o: T,
) {
  return {
    format: ['cjs'] as 'cjs'[],
    outExtension: () => ({ js: '.cjs' }),
    clean: false,
    sourcemap: true,
    target: 'node20',
    shims: false,
    noExternal: [/^@sd\//],
    ...o,
    external: ['dbus-next', ...(o.external ?? [])],
    esbuildOptions: (x: EsbuildOptions) => {
      x.charset = 'ascii';
      cjsImportMetaUrl(x);
      o.esbuildOptions?.(x);
    },
  };
}

interface EsbuildOptions {
  charset?: string;
  define?: Record<string, string>;
  inject?: string[];
  supported?: Record<string, boolean>;
}

import { dirname, join, relative, resolve, sep } from 'node:path';
import { build } from 'esbuild';
import { onEveryImport, type Resolver } from './cli-bundle.js';

/**
 * A CLI in two bundles: cli.cjs, which every start runs, and a lazy one
 * (sd-nspawn's extras.cjs: networking and disk images) that a start loads
 * only when it calls for it. Main code reaches the lazy part through one
 * loader module exporting one function (src/extras-load.ts: `extras()`):
 * the library build imports it as any module; the CLI build replaces it
 * with a loader that runs the lazy bundle through the code cache at its
 * first call (runCached) and hands it, instead of copies, what it imports
 * of the main bundle: of every package and source file that is not lazy,
 * the names it reads. Module state (the poller, spawn's children, the libc
 * handle) and classes (SdError, for instanceof) stay one. Each build fails
 * when a module would land in both bundles or a name would be missing.
 * esbuild's own splitting needs ESM output, and a dynamic import() into a
 * CommonJS bundle wraps every module it reaches in a lazy initializer,
 * which made each start slower (+1 ms measured).
 */
export interface LazyBundle {
  /** The package's directory. */
  root: string;
  /** The loader module (package-relative) and the name of the function it exports. */
  loader: string;
  exportName: string;
  /** The lazy bundle's entry (package-relative) and its file beside the main bundle. */
  entry: string;
  file: string;
  /** What only the lazy bundle holds: package names and package-relative source files. */
  lazy: readonly string[];
}

const PACKAGES = `${sep}packages${sep}`;

/** The package name and package-relative path of a source file of this repository's packages. */
function ownerOf(path: string): { pkg: string; rel: string } | undefined {
  const at = path.lastIndexOf(PACKAGES);
  if (at < 0) return undefined;
  const [name, ...rest] = path.slice(at + PACKAGES.length).split(sep);
  return name ? { pkg: `@sd/${name}`, rel: rest.join('/') } : undefined;
}

function isLazy(spec: LazyBundle, path: string): boolean {
  const o = ownerOf(path);
  return !!o && (spec.lazy.includes(o.pkg) || (o.pkg === selfOf(spec) && spec.lazy.includes(o.rel)));
}

const selfOf = (spec: LazyBundle) => ownerOf(join(spec.root, 'package.json'))?.pkg;

/**
 * For the lazy bundle's build: what it imports from the main bundle
 * becomes an external import the main bundle's loader answers. Another
 * package by the name it is imported by (`@sd/sys`), a file of this
 * package by its own (`@sd/nspawn/src/errors.ts`). `seen` collects those
 * ids (the analysis of sharedImports); without it, the build checks its
 * output against what the loader hands over.
 */
export function lazyBundleSide(spec: LazyBundle, seen?: Set<string>) {
  const ids = seen ?? new Set<string>();
  return {
    name: 'sd-lazy-bundle-side',
    setup(
      b: Resolver & {
        onEnd(f: (r: { outputFiles?: Array<{ path: string; text: string }> }) => Promise<void>): void;
      },
    ) {
      // The bundle written reads nothing of the main one that the main bundle's loader
      // (made from sharedImports) does not hand over.
      if (!seen)
        b.onEnd(async (r) => {
          const out = r.outputFiles?.find((f) => f.path.endsWith(`/${spec.file}`));
          if (!out) return;
          const given = await sharedImports(spec);
          for (const [id, names] of namesRead(out.text, ids, spec.file))
            for (const n of names)
              if (!given.get(id)?.has(n))
                throw new Error(
                  `${spec.file} reads ${n} of ${id}, which the main bundle's loader does not hand over`,
                );
        });
      onEveryImport(b, (a, r) => {
        const o = r.errors.length === 0 ? ownerOf(r.path) : undefined;
        if (!o || isLazy(spec, r.path)) return undefined;
        let id: string;
        if (a.path.startsWith('@sd/')) id = a.path;
        else if (o.pkg === selfOf(spec)) id = `${o.pkg}/${o.rel}`;
        else throw new Error(`${a.importer} imports ${r.path} of ${o.pkg} by path, not through the package`);
        ids.add(id);
        return { path: id, external: true };
      });
    },
  };
}

/**
 * What the lazy bundle imports from the main one: per shared id, the names
 * it reads. Read from its CommonJS output, where esbuild turns each import
 * into `var import_x = require("ID")` and each use into `import_x.NAME`. Only
 * those names are handed over: a whole module namespace would keep every
 * export of @sd/sys in the main bundle and define a getter for each at every
 * start (which cost more than the split saved).
 */
async function sharedImports(spec: LazyBundle): Promise<Map<string, Set<string>>> {
  const seen = new Set<string>();
  const out = await build({
    entryPoints: [resolve(spec.root, spec.entry)],
    absWorkingDir: spec.root,
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    logLevel: 'silent',
    plugins: [lazyBundleSide(spec, seen) as never, npmExternal as never],
  });
  return namesRead(out.outputFiles[0]?.text ?? '', seen, spec.file);
}

/** Per shared id, the names a CommonJS bundle's text reads of it (see sharedImports). */
function namesRead(text: string, ids: Iterable<string>, file: string): Map<string, Set<string>> {
  const names = new Map<string, Set<string>>();
  for (const id of ids) {
    const used = new Set<string>();
    const quoted = JSON.stringify(id).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    const vars = [...text.matchAll(new RegExp(`var (\\w+) = require\\(${quoted}\\);`, 'g'))];
    // Any other require of it (an `export *` re-export, say) would take names unseen here.
    if (text.split(`require(${JSON.stringify(id)})`).length - 1 !== vars.length)
      throw new Error(
        `${file}: ${id} is required other than as \`var x = require(...)\`: its names cannot be read`,
      );
    for (const [, v] of vars) {
      for (const m of text.matchAll(new RegExp(`\\b${v}\\b(\\.[A-Za-z_$][\\w$]*)?`, 'g'))) {
        if (text.startsWith(`var ${v} = require(`, (m.index ?? 0) - 4)) continue;
        if (m[1] === undefined) throw new Error(`${file}: ${id} is used as a whole (${v}), not by its names`);
        used.add(m[1].slice(1));
      }
    }
    names.set(id, used);
  }
  return names;
}

/** npm packages (koffi, dbus-next) stay external: only our modules matter to the split. */
const npmExternal = {
  name: 'npm-external',
  setup(b: Resolver) {
    b.onResolve({ filter: /^[^./]/ }, (a) =>
      a.path.startsWith('@sd/') ? undefined : { path: a.path, external: true },
    );
  },
};

/**
 * For the main bundle's build: the loader module becomes the one that runs
 * the lazy bundle, and a lazy module reached from main code fails the
 * build (it would be in both bundles).
 */
export function lazyBundleMain(spec: LazyBundle) {
  const loader = resolve(spec.root, spec.loader);
  return {
    name: 'sd-lazy-bundle-main',
    setup(
      b: Resolver & {
        onLoad(
          o: { filter: RegExp },
          f: () => Promise<{ contents: string; loader: string; resolveDir: string }>,
        ): void;
      },
    ) {
      onEveryImport(b, (a, r) => {
        if (r.errors.length > 0 || r.path === loader || a.importer === loader) return undefined;
        if (isLazy(spec, r.path))
          throw new Error(
            `${relative(spec.root, a.importer)} imports ${a.path}, which belongs to the lazy ${spec.file}: reach it through ${spec.loader}`,
          );
        return undefined;
      });
      b.onLoad({ filter: new RegExp(`^${loader.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }, async () => {
        const shared = [...(await sharedImports(spec))].sort(([a], [b]) => a.localeCompare(b));
        const self = `${selfOf(spec)}/`;
        const imports = shared.map(([id, names], i) => {
          const from = id.startsWith(self) ? join(spec.root, id.slice(self.length)) : id;
          const list = [...names].sort();
          return `import { ${list.map((n) => `${n} as m${i}_${n}`).join(', ')} } from ${JSON.stringify(from)};`;
        });
        const objects = shared.map(([id, names], i) => {
          const fields = [...names].sort().map((n) => `${n}: m${i}_${n}`);
          return `[${JSON.stringify(id)}, { ${fields.join(', ')} }]`;
        });
        return {
          resolveDir: dirname(loader),
          loader: 'js',
          contents: [
            "import { runCached } from '@sd/basic/code-cache';",
            ...imports,
            'let loaded;',
            `const file = \`\${__dirname}/${spec.file}\`;`,
            // Made at the first load, not at every start (~0.1 ms for sd-nspawn's).
            'function load() {',
            `  const shared = new Map([${objects.join(', ')}]);`,
            '  try {',
            '    return runCached(file, { require: (id) => (shared.has(id) ? shared.get(id) : require(id)) });',
            '  } catch (e) {',
            "    if (e?.code === 'ENOENT' && e.path === file)",
            "      throw new Error(file + ' is missing: this install of the package is incomplete', { cause: e });",
            '    throw e;',
            '  }',
            '}',
            `export const ${spec.exportName} = () => (loaded ??= load());`,
          ].join('\n'),
        };
      });
    },
  };
}

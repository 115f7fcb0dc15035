import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { Module } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheVariant } from './code-cache.js';

// runCached as a CLI's bin uses it, in fresh node processes: the cache is
// written on the first run and used on the next, a changed bundle or a
// corrupt cache is never used (and rewritten), a cache others could have
// written is never used, and a read-only package directory falls back to
// the user's cache directory or to no cache, silently.

const CODE_CACHE_TS = fileURLToPath(new URL('./code-cache.ts', import.meta.url));
let dir = '';
// code-cache.ts as plain JavaScript, run by a plain node as a bin runs it: a loader such as tsx's
// works on a thread of its own, whose CPU time the "grown" rule would count as the run's.
let codeCache = '';

const bundle = (word: string) =>
  `#!/usr/bin/env node\n"use strict";\nconst { basename } = require("node:path");\n` +
  `process.stdout.write(\`${word} \${basename(__filename)} \${basename(__dirname)} \${module.filename === __filename}\\n\`);\n` +
  'process.exitCode = 3;\n';

function setup(name: string, options = ''): { pkg: string; file: string; launcher: string; cache: string } {
  const pkg = join(dir, name);
  mkdirSync(pkg);
  const file = join(pkg, 'cli.cjs');
  writeFileSync(file, bundle('hello'));
  const launcher = join(pkg, 'bin.mjs');
  writeFileSync(
    launcher,
    `import { runCached } from ${JSON.stringify(codeCache)};\nrunCached(${JSON.stringify(file)}${options});\n`,
  );
  return { pkg, file, launcher, cache: `${file}.v8cache` };
}

function run(launcher: string, env: NodeJS.ProcessEnv = {}, args: string[] = []) {
  const r = spawnSync(process.execPath, [launcher, ...args], {
    encoding: 'utf8',
    env: { ...process.env, XDG_CACHE_HOME: join(dir, 'xdg'), ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const id = (p: string) => {
  const s = statSync(p);
  return `${s.ino}:${s.mtimeMs}`;
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sd-start-codecache-'));
  codeCache = join(dir, 'code-cache.mjs');
  const js = ts.transpileModule(readFileSync(CODE_CACHE_TS, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  writeFileSync(codeCache, js.outputText);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('runCached', () => {
  // Here and below, upgradeMaxSeconds: 0 keeps a loaded machine's slower second run from
  // rewriting the cache as "grown" (that rule has its own test): these check write-once-then-use.
  it('runs the bundle as Node would, writes the cache once and then uses it', () => {
    const { launcher, cache } = setup('once', ', { upgradeMaxSeconds: 0 }');
    const first = run(launcher);
    expect(first).toEqual({ status: 3, stdout: 'hello cli.cjs once true\n', stderr: '' });
    expect(readFileSync(cache).toString('latin1')).toMatch(/^sd-v8cache 4 v\d+.*\nwork \d+ failed *\n/);
    const before = id(cache);
    expect(run(launcher)).toEqual(first);
    expect(id(cache)).toBe(before);
  });

  it('runs a bundle built inside the CommonJS wrapper as it is, lines unmoved, and caches it', () => {
    const { file, launcher, cache } = setup('prewrapped', ', { upgradeMaxSeconds: 0 }');
    // As tools/build/cli-bundle.ts's prewrapCjs builds it: wrapped twice, it would only define a function.
    const [start, end] = (Module as unknown as { wrapper: [string, string] }).wrapper;
    const body = bundle('wrapped').replace('#!/usr/bin/env node\n', '');
    writeFileSync(
      file,
      `${start}${body}const line = new Error().stack.split('\\n')[1].match(/:(\\d+):/)[1];\nprocess.stdout.write(line + '\\n');${end}\n`,
    );
    const first = run(launcher);
    expect(first).toEqual({ status: 3, stdout: 'wrapped cli.cjs prewrapped true\n5\n', stderr: '' });
    const before = id(cache);
    expect(run(launcher)).toEqual(first);
    expect(id(cache)).toBe(before);
  });

  it("gives the bundle the bin's own require when the bin passes it", () => {
    const { launcher } = setup(
      'own-require',
      ', { upgradeMaxSeconds: 0, require: (id) => (id === "node:path" ? { basename: (p) => "via-bin:" + p.split("/").pop() } : undefined) }',
    );
    expect(run(launcher)).toEqual({
      status: 3,
      stdout: 'hello via-bin:cli.cjs via-bin:own-require true\n',
      stderr: '',
    });
  });

  it("returns the bundle's module.exports, also when run from its cache (a lazy bundle's loader uses them)", () => {
    const { file, launcher } = setup('exports', ', { upgradeMaxSeconds: 0 }');
    writeFileSync(file, '"use strict";\nexports.answer = 42;\nmodule.exports.twice = (n) => 2 * n;\n');
    writeFileSync(
      launcher,
      `import { runCached } from ${JSON.stringify(codeCache)};\n` +
        `const m = runCached(${JSON.stringify(file)}, { upgradeMaxSeconds: 0 });\n` +
        'process.stdout.write(`${m.answer} ${m.twice(21)}\\n`);\n',
    );
    for (let i = 0; i < 2; i++) expect(run(launcher)).toEqual({ status: 0, stdout: '42 42\n', stderr: '' });
  });

  it("asks the bin's require once per id, and again after it threw", () => {
    const { file, launcher } = setup(
      'require-once',
      ', { upgradeMaxSeconds: 0, require: (id) => { globalThis.asked = (globalThis.asked ?? 0) + 1; if (id === "bad") throw new Error("no " + id); return { id }; } }',
    );
    writeFileSync(
      file,
      '"use strict";\nconst a = require("x"), b = require("x");\n' +
        'for (const n of [1, 2]) try { require("bad"); } catch (e) { process.stdout.write(e.message + " "); }\n' +
        'process.stdout.write(`${a === b} ${a.id} ${globalThis.asked}\\n`);\n',
    );
    // One answer for "x", two calls for the "bad" that threw both times.
    expect(run(launcher)).toEqual({ status: 0, stdout: 'no bad no bad true x 3\n', stderr: '' });
  });

  it('uses a cache smaller than its bundle, read into the buffer the source was read into', () => {
    const { file, launcher, cache } = setup('larger', ', { upgradeMaxSeconds: 0 }');
    writeFileSync(file, `${bundle('large')}// ${'x'.repeat(300_000)}\n`);
    const first = run(launcher);
    expect(first).toEqual({
      status: 3,
      stdout: 'large cli.cjs larger true\n',
      stderr: '',
    });
    expect(statSync(cache).size).toBeLessThan(statSync(file).size);
    const before = id(cache);
    // A cache V8 rejected (its bytes overwritten by the read, say) would be written again.
    expect(run(launcher)).toEqual(first);
    expect(id(cache)).toBe(before);
  });

  it('never runs a cache against a changed bundle of the same length', () => {
    const { file, launcher, cache } = setup('stale');
    run(launcher);
    const before = id(cache);
    writeFileSync(file, bundle('world'));
    expect(run(launcher)).toEqual({ status: 3, stdout: 'world cli.cjs stale true\n', stderr: '' });
    expect(id(cache)).not.toBe(before);
  });

  it('falls back silently from a corrupt cache and rewrites it', () => {
    const { launcher, cache } = setup('corrupt');
    run(launcher);
    const text = readFileSync(cache);
    const stamp = text.subarray(0, text.indexOf(10, text.indexOf(10) + 1) + 1);
    expect(stamp.toString()).toMatch(/\nwork \d+ failed *\n$/);
    // The code starts 8-byte aligned: V8 copies cached data that does not.
    expect(stamp.length % 8).toBe(0);
    writeFileSync(cache, Buffer.concat([stamp, Buffer.from('garbage, not V8 code')]), { mode: 0o644 });
    expect(run(launcher)).toEqual({ status: 3, stdout: 'hello cli.cjs corrupt true\n', stderr: '' });
    expect(readFileSync(cache).length).toBeGreaterThan(stamp.length + 20);
  });

  it('never uses a cache that others can write', () => {
    const { launcher, cache } = setup('writable');
    run(launcher);
    chmodSync(cache, 0o666);
    const before = id(cache);
    expect(run(launcher).stdout).toBe('hello cli.cjs writable true\n');
    // Distrusted, so compiled afresh and written anew (a new file, with mode 0644).
    expect(id(cache)).not.toBe(before);
    expect(statSync(cache).mode & 0o777).toBe(0o644);
  });

  it('is written again by a run that does clearly more than the one that wrote it, not by a lighter one', () => {
    const { file, launcher, cache } = setup('grows');
    // "heavy" runs functions a light run never compiles, for some 40 ms of CPU.
    writeFileSync(
      file,
      `${bundle('hello')}if (process.argv.includes('heavy')) {\n` +
        '  const busy = (ms) => { const end = process.cpuUsage().user + ms * 1000; let x = 0; while (process.cpuUsage().user < end) x++; return x; };\n' +
        '  busy(60);\n}\n',
    );
    const work = () => Number(/\nwork (\d+) /.exec(readFileSync(cache).toString('latin1'))?.[1]);
    run(launcher);
    const light = id(cache);
    const lightWork = work();
    run(launcher);
    expect(id(cache)).toBe(light);
    expect(run(launcher, {}, ['heavy']).status).toBe(3);
    expect(id(cache)).not.toBe(light);
    expect(work()).toBeGreaterThan(lightWork + 30_000);
    const heavy = id(cache);
    // A lighter run keeps it. (A second heavy run is not checked: under CI load its CPU can pass
    // half as much again of the first one's, which the rule then rightly takes as more work.)
    run(launcher);
    expect(id(cache)).toBe(heavy);
  });

  it('is written again by the first run that succeeds after a failed run wrote it', () => {
    // Only the status decides here: "kept otherwise" is the CPU rule's, tested above (and noisy under load).
    const { file, launcher, cache } = setup('failed-first');
    writeFileSync(file, `${bundle('hello')}if (process.argv.includes('ok')) process.exitCode = 0;\n`);
    expect(run(launcher).status).toBe(3);
    const failed = id(cache);
    expect(readFileSync(cache).toString('latin1')).toMatch(/\nwork \d+ failed *\n/);
    expect(run(launcher, {}, ['ok']).status).toBe(0);
    expect(id(cache)).not.toBe(failed);
    expect(readFileSync(cache).toString('latin1')).toMatch(/\nwork \d+ ok *\n/);
  });

  it('is not written again by a run longer than upgradeMaxSeconds (V8 may have flushed idle code)', () => {
    const { file, launcher, cache } = setup('long', ', { upgradeMaxSeconds: 0 }');
    writeFileSync(
      file,
      `${bundle('hello')}if (process.argv.includes('heavy')) {\n` +
        '  const end = process.cpuUsage().user + 60000; while (process.cpuUsage().user < end);\n}\n',
    );
    run(launcher);
    const light = id(cache);
    expect(run(launcher, {}, ['heavy']).status).toBe(3);
    expect(id(cache)).toBe(light);
  });

  it('keeps a cache per variant', () => {
    const { pkg, launcher, cache } = setup('variant', ", { variant: 'info' }");
    expect(run(launcher).stdout).toBe('hello cli.cjs variant true\n');
    expect(existsSync(join(pkg, 'cli.cjs.info.v8cache'))).toBe(true);
    expect(existsSync(cache)).toBe(false);
  });

  it('runs a bundle that is not ASCII', () => {
    const { file, launcher } = setup('utf8');
    writeFileSync(file, bundle('grüße…'));
    expect(run(launcher).stdout).toBe('grüße… cli.cjs utf8 true\n');
    expect(run(launcher).stdout).toBe('grüße… cli.cjs utf8 true\n');
  });

  it('is off with SD_CODE_CACHE=0', () => {
    const { launcher, cache } = setup('off');
    expect(run(launcher, { SD_CODE_CACHE: '0' }).stdout).toBe('hello cli.cjs off true\n');
    expect(existsSync(cache)).toBe(false);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'works from a read-only package directory: the user cache directory, else no cache',
    () => {
      const { pkg, launcher, cache } = setup('readonly');
      const mount = (...a: string[]) => spawnSync('mount', a, { encoding: 'utf8' });
      expect(mount('--bind', pkg, pkg).status).toBe(0);
      try {
        expect(mount('-o', 'remount,bind,ro', pkg).status).toBe(0);
        const first = run(launcher);
        expect(first).toEqual({ status: 3, stdout: 'hello cli.cjs readonly true\n', stderr: '' });
        expect(existsSync(cache)).toBe(false);
        const xdg = join(
          dir,
          'xdg',
          'sd',
          'code-cache',
          `${join(pkg, 'cli.cjs').replaceAll('/', '%')}.v8cache`,
        );
        expect(existsSync(xdg)).toBe(true);
        const before = id(xdg);
        expect(run(launcher)).toEqual(first);
        expect(id(xdg)).toBe(before);
        // No writable place at all: still runs, says nothing.
        expect(run(launcher, { XDG_CACHE_HOME: pkg })).toEqual(first);
      } finally {
        spawnSync('umount', [pkg]);
      }
    },
  );
});

describe('cacheVariant', () => {
  it("names --help and --version runs 'info', before any '--'", () => {
    expect(cacheVariant(['--help'])).toBe('info');
    expect(cacheVariant(['-D', '/t', '-h'])).toBe('info');
    expect(cacheVariant(['--version'], ['list'], 'list')).toBe('info');
    expect(cacheVariant(['-D', '/t', '--', '/bin/ls', '--help'])).toBe('run');
  });

  it('names the first known verb, the default verb without one, never an unknown word', () => {
    const verbs = ['list', 'status'];
    expect(cacheVariant(['-M', 'inner', 'status', 'list'], verbs, 'list')).toBe('status');
    expect(cacheVariant(['--no-legend'], verbs, 'list')).toBe('list');
    expect(cacheVariant(['lsit'], verbs, 'list')).toBe('list');
    expect(cacheVariant(['-D', '/t', '/bin/true'])).toBe('run');
  });
});

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The CLI bundle's koffi (tools/build/koffi-load.cjs): koffi's native module
// found as Node's resolver finds the koffi package and loaded directly, or
// koffi's own entry whenever that does not fit.

const require = createRequire(import.meta.url);
const { findNative, loadKoffi } = require('../../../tools/build/koffi-find.cjs') as {
  findNative(from: string): { pkg: string; native: string } | undefined;
  loadKoffi(from: string, fallback: () => unknown): Record<string, unknown>;
};
const koffiPackage = join(dirname(require.resolve('koffi')), 'package.json');
const dist = fileURLToPath(new URL('../dist', import.meta.url));
const koffiVersion = (JSON.parse(readFileSync(koffiPackage, 'utf8')) as { version: string }).version;
const FALLBACK = { fallback: true };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'start3-koffi-load-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('koffi-load', () => {
  it('finds the native module of the koffi package the bundle would resolve, and loads it', () => {
    const found = findNative(dist);
    expect(found?.pkg).toBe(koffiPackage);
    expect(found?.native).toMatch(/koffi\.node$/);
    const koffi = loadKoffi(dist, () => FALLBACK) as {
      version: string;
      load(name: string): { func(decl: string): () => number };
    };
    expect(koffi).not.toBe(FALLBACK);
    expect(koffi.version).toBe(koffiVersion);
    expect(koffi.load('libc.so.6').func('int getpid(void)')()).toBe(process.pid);
  });

  it("takes koffi's entry when the native module is not the package's version", () => {
    const found = findNative(dist)!;
    const modules = join(dir, 'other', 'node_modules');
    mkdirSync(join(modules, 'koffi'), { recursive: true });
    writeFileSync(
      join(modules, 'koffi', 'package.json'),
      JSON.stringify({ name: 'koffi', version: '0.0.1' }),
    );
    const native = join(
      modules,
      '@koromix',
      `koffi-${process.platform}-${process.arch}`,
      `${process.platform}_${process.arch}`,
    );
    mkdirSync(native, { recursive: true });
    copyFileSync(found.native, join(native, 'koffi.node'));
    mkdirSync(join(dir, 'other', 'dist'));
    expect(findNative(join(dir, 'other', 'dist'))?.native).toBe(join(native, 'koffi.node'));
    expect(loadKoffi(join(dir, 'other', 'dist'), () => FALLBACK)).toBe(FALLBACK);
  });

  it("takes koffi's entry without a koffi package or prebuilt module up the tree", () => {
    mkdirSync(join(dir, 'none', 'node_modules', 'koffi'), { recursive: true });
    writeFileSync(join(dir, 'none', 'node_modules', 'koffi', 'package.json'), '{"version":"1.0.0"}');
    expect(findNative(join(dir, 'none'))).toBeUndefined();
    expect(loadKoffi(join(dir, 'none'), () => FALLBACK)).toBe(FALLBACK);
    expect(findNative(dirname('/'))).toBeUndefined();
  });

  it("takes koffi's entry with SD_KOFFI_ENTRY=1", () => {
    process.env.SD_KOFFI_ENTRY = '1';
    try {
      expect(loadKoffi(dist, () => FALLBACK)).toBe(FALLBACK);
    } finally {
      delete process.env.SD_KOFFI_ENTRY;
    }
  });
});

describe('koffi-load in two bundles', () => {
  it('gives every bundle of a process the same koffi', () => {
    const source = fileURLToPath(new URL('../../../tools/build/koffi-load.cjs', import.meta.url));
    const find = fileURLToPath(new URL('../../../tools/build/koffi-find.cjs', import.meta.url));
    const loaded: unknown[] = [];
    for (const name of ['a', 'b']) {
      // A copy as a second bundle would carry it, next to the real node_modules.
      const at = join(dirname(source), `.koffi-load-test-${process.pid}-${name}`);
      mkdirSync(at, { recursive: true });
      copyFileSync(source, join(at, 'koffi-load.cjs'));
      copyFileSync(find, join(at, 'koffi-find.cjs'));
      try {
        loaded.push(require(join(at, 'koffi-load.cjs')));
      } finally {
        rmSync(at, { recursive: true, force: true });
      }
    }
    expect(loaded[0]).toBeDefined();
    expect(loaded[1]).toBe(loaded[0]);
  });
});

'use strict';
// How koffi-load.cjs finds koffi's native module (a module of its own, for tests).

const { existsSync, readFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

/**
 * The directory of the koffi package Node would resolve from `from`, and the
 * prebuilt module next to it (@koromix/koffi-PLATFORM-ARCH, or koffi's own build).
 */
function findNative(from) {
  const triplet = `${process.platform}_${process.arch}`;
  for (let dir = from; ; dir = dirname(dir)) {
    const modules = join(dir, 'node_modules');
    const pkg = join(modules, 'koffi', 'package.json');
    if (existsSync(pkg)) {
      const candidates = [
        join(modules, '@koromix', `koffi-${process.platform}-${process.arch}`, triplet, 'koffi.node'),
        join(modules, 'koffi', 'build', 'koffi', triplet, 'koffi.node'),
      ];
      const native = candidates.find((c) => existsSync(c));
      return native ? { pkg, native } : undefined;
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/** koffi's API: the native module when it is the package's own version, else koffi's entry. */
function loadKoffi(from, fallback) {
  // A musl host fails the dlopen of the glibc build and takes koffi's entry, which probes for it.
  if (process.platform === 'linux' && process.env.SD_KOFFI_ENTRY !== '1') {
    try {
      const found = findNative(from);
      if (found) {
        const { version } = JSON.parse(readFileSync(found.pkg, 'utf8'));
        const m = { exports: {} };
        process.dlopen(m, found.native);
        if (m.exports.version === version) return m.exports;
      }
    } catch {}
  }
  return fallback();
}

module.exports = { findNative, loadKoffi };

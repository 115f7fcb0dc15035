'use strict';
// koffi for CLI bundles (see cli-bundle.ts, koffiFastLoad): the native module
// itself, found the way Node's resolver would find the koffi package, and
// loaded with process.dlopen. koffi's own entry spends ~7 ms of every start
// on resolving its package exports, probing the C library of the host,
// loading node:module and wrapping deprecated APIs; the dlopen alone is
// under 1 ms. Whatever does not fit (another platform, no prebuilt module,
// a version that is not the package's) falls back to require('koffi').

const { loadKoffi } = require('./koffi-find.cjs');

// One koffi per process, whichever bundle loads it first (machinectl's CLI and
// its pty bundle each carry this file): a second dlopen of the native module
// would run its init again over the first one's instance data.
const LOADED = Symbol.for('sd.koffi');
globalThis[LOADED] ??= loadKoffi(__dirname, () => require('koffi'));
module.exports = globalThis[LOADED];

#!/usr/bin/env node
import { cacheVariant, runCached } from '@sd/basic/code-cache';
import { VERB_NAMES } from './machinectl/verb-names.js';

// machinectl's bin: runs the CLI bundle (machinectl.ts built into dist/machinectl-cli.cjs) through
// a V8 code cache, which spares compiling it on every start. This file bundles nothing else but the
// verb names: each verb keeps a cache of its own (list and status run different code, and a cache a
// --help wrote first would leave `list` compiling most of its code on every run: measured 5 ms).
// Built as CommonJS only (tsup.config.ts): __dirname is dist/, no URL is made at start, and this
// file's require resolves for the bundle beside it.
runCached(`${__dirname}/machinectl-cli.cjs`, {
  variant: cacheVariant(process.argv.slice(2), VERB_NAMES, 'list'),
  require,
});

#!/usr/bin/env node
import { runCached } from '@sd/basic/code-cache';

// machinectl's bin: runs the CLI bundle (machinectl.ts built into dist/machinectl-cli.cjs) through
// a V8 code cache, which spares compiling it on every start. This file bundles nothing else.
// Built as CommonJS only (tsup.config.ts): __dirname is dist/, no URL is made at start, and this
// file's require resolves for the bundle beside it.
runCached(`${__dirname}/machinectl-cli.cjs`, { require });

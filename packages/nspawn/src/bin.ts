#!/usr/bin/env node
import { cacheVariant, runCached } from '@sd/basic/code-cache';

// sd-nspawn's bin: runs the CLI bundle (cli.ts built into dist/cli.cjs) through a V8 code cache,
// which spares compiling it on every start. This file bundles nothing else.
// --help and --version run little of the bundle: a cache of their own, so that a container start's
// cache always holds the start's code, whichever came first.
// Built as CommonJS only (tsup.config.ts): __dirname is dist/, no URL is made at start, and this
// file's require resolves for the bundle beside it.
runCached(`${__dirname}/cli.cjs`, { variant: cacheVariant(process.argv.slice(2)), require });

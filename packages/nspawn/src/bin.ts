#!/usr/bin/env node
import { fileURLToPath } from 'node:url';
import { runCached } from '@sd/basic/code-cache';

// sd-nspawn's bin: runs the CLI bundle (cli.ts built into dist/cli.cjs) through a V8 code cache,
// which spares compiling it on every start. This file bundles nothing else.
runCached(fileURLToPath(new URL('./cli.cjs', import.meta.url)));

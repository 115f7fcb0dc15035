#!/usr/bin/env node
import { fileURLToPath } from 'node:url';
import { runCached } from '@sd/basic/code-cache';

// machinectl's bin: runs the CLI bundle (machinectl.ts built into dist/machinectl-cli.cjs) through
// a V8 code cache, which spares compiling it on every start. This file bundles nothing else.
runCached(fileURLToPath(new URL('./machinectl-cli.cjs', import.meta.url)));

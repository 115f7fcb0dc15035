import { fileSource, importTar } from '../../../packages/importd/src/index.js';
import { ImagePool, imagePoolPaths } from '../../../packages/machined/src/images/index.js';

/**
 * One import in a fresh process, as sd-importd does it: prints the time
 * spent in the import (without Node's start) and the peak RSS.
 *   one.ts FILE POOL_DIR NAME
 */
const [file, poolDir, name] = process.argv.slice(2) as [string, string, string];
const pool = new ImagePool({ paths: { ...imagePoolPaths('/'), poolDir, searchPath: [poolDir] } });
const t0 = process.hrtime.bigint();
await importTar(fileSource(file), name, { pool });
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
process.stdout.write(`${JSON.stringify({ ms, maxRssKb: process.resourceUsage().maxRSS })}\n`);

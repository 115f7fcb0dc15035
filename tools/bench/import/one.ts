import { readFileSync } from 'node:fs';
import { fileSource, importTar } from '../../../packages/importd/src/index.js';
import { ImagePool, imagePoolPaths } from '../../../packages/machined/src/images/index.js';

/**
 * One import in a fresh process, as sd-importd does it: prints the time
 * spent in the import (without Node's start) and the peak RSS.
 *   one.ts FILE POOL_DIR NAME
 */
const [file, poolDir, name] = process.argv.slice(2) as [string, string, string];
const pool = new ImagePool({ paths: { ...imagePoolPaths('/'), poolDir, searchPath: [poolDir] } });
/** CPU time of the main thread alone (ms): what bounds the wall time when another core is free. */
const mainMs = () =>
  Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
const m0 = mainMs();
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
await importTar(fileSource(file), name, { pool });
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
const cpu = process.cpuUsage(c0);
const main = mainMs() - m0;
// SD_BENCH_WARM=1: a second import in the same process, as a running sd-importd does every
// import after its first (its code compiled and optimised by then); the first is removed first.
let warmMs: number | undefined;
if (process.env.SD_BENCH_WARM === '1') {
  await pool.remove(name);
  const t1 = process.hrtime.bigint();
  await importTar(fileSource(file), name, { pool });
  warmMs = Number(process.hrtime.bigint() - t1) / 1e6;
}
// CPU time (all threads: the decoders' pool threads too) is steadier than wall time on a loaded machine.
const cpuMs = (cpu.user + cpu.system) / 1000;
process.stdout.write(
  `${JSON.stringify({ ms, cpuMs, mainMs: main, maxRssKb: process.resourceUsage().maxRSS, warmMs })}\n`,
);

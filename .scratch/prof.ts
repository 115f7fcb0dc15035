import { rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { copyTree, stopCopyHelpers } from '@sd/sys';
const M = '/dev/shm/c3/m';
const par = process.argv[3] === 'par';
for (let i = 0; i < Number(process.argv[2] ?? 4); i++) {
  rmSync(`${M}/o`, { recursive: true, force: true }); execFileSync('sync');
  const c0 = process.cpuUsage(); const t = performance.now();
  const st = await copyTree(`${M}/src`, `${M}/o`, { parallel: par });
  const c = process.cpuUsage(c0);
  console.log(`wall ${(performance.now() - t).toFixed(0)} user ${(c.user / 1000).toFixed(0)} sys ${(c.system / 1000).toFixed(0)} ${JSON.stringify(st, (_, x) => typeof x === 'bigint' ? Number(x) : x)}`);
}
stopCopyHelpers();

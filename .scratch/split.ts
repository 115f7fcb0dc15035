import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { copyHelpersCpuMs, copyTree, stopCopyHelpers } from '@sd/sys';
const M = '/dev/shm/c3/m';
const S = `${M}/${process.env.SRC ?? 'src'}`;
rmSync(`${M}/o`, { recursive: true, force: true });
await copyTree(S, `${M}/o`, { parallel: true });
for (let i = 0; i < Number(process.argv[2] ?? 6); i++) {
  for (const mode of ['par', 'one']) {
    rmSync(`${M}/o`, { recursive: true, force: true });
    execFileSync('sync');
    const c0 = process.cpuUsage();
    const h0 = copyHelpersCpuMs();
    const t = performance.now();
    await copyTree(S, `${M}/o`, { parallel: mode === 'par' });
    const w = performance.now() - t;
    const c = process.cpuUsage(c0);
    console.log(`${mode} wall ${w.toFixed(0)} user ${(c.user / 1000).toFixed(0)} sys ${(c.system / 1000).toFixed(0)} helper ${copyHelpersCpuMs() - h0}`);
  }
}
stopCopyHelpers();

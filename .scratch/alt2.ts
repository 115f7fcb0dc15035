import { rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { copyTree, stopCopyHelpers, copyHelpersCpuMs } from '@sd/sys';
const M = '/dev/shm/c3/m';
const res: Record<string, number[]> = { par: [], one: [], cp: [] };
const cpu: Record<string, number[]> = { par: [], one: [], cp: [] };
await copyTree(`${M}/${process.env.SRC ?? 'src'}`, `${M}/o`, { parallel: true }); rmSync(`${M}/o`, { recursive: true });
for (let i = 0; i < Number(process.argv[2] ?? 6); i++) {
  for (const mode of ['par', 'one', 'cp']) {
    rmSync(`${M}/o`, { recursive: true, force: true }); execFileSync('sync');
    const c0 = process.cpuUsage(); const h0 = copyHelpersCpuMs(); const t = performance.now();
    if (mode === 'cp') execFileSync('cp', ['-a', `${M}/${process.env.SRC ?? 'src'}`, `${M}/o`]);
    else await copyTree(`${M}/${process.env.SRC ?? 'src'}`, `${M}/o`, { parallel: mode === 'par' });
    res[mode]!.push(performance.now() - t);
    const c = process.cpuUsage(c0); cpu[mode]!.push((c.user + c.system) / 1000 + copyHelpersCpuMs() - h0);
  }
}
stopCopyHelpers();
const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!.toFixed(0);
for (const k of Object.keys(res)) console.log(`${k} wall ${med(res[k]!)} [${res[k]!.map((x) => x.toFixed(0)).join(' ')}] cpu ${med(cpu[k]!)}`);

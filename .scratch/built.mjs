import { copyTree, stopCopyHelpers, CopyHelper } from '@sd/sys';
import { rmSync } from 'node:fs';
const M = '/dev/shm/c3/m';
rmSync(`${M}/o`, { recursive: true, force: true });
const h = await CopyHelper.start();
const st = await copyTree(`${M}/src`, `${M}/o`, { parallel: h });
console.log('jobs', h.jobs, st.files);
h.stop();

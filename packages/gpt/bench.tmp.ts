import { dissectImage, mountImage } from './src/index.js';
import { mkdirSync } from 'node:fs';
const img = '/tmp/sdx/img.raw';
let t = performance.now();
for (let i = 0; i < 100; i++) dissectImage(img);
console.log('dissect ms/op', ((performance.now() - t) / 100).toFixed(2));
mkdirSync('/tmp/sdx/mnt', { recursive: true });
const times: number[] = [];
for (let i = 0; i < 20; i++) {
  t = performance.now();
  const m = mountImage(img, '/tmp/sdx/mnt', { skip: ['esp'] });
  const mid = performance.now();
  m.release();
  times.push(mid - t, performance.now() - mid);
}
const mounts = times.filter((_, i) => i % 2 === 0).sort((a, b) => a - b);
const rel = times.filter((_, i) => i % 2 === 1).sort((a, b) => a - b);
console.log('mount (root+home, 2 partitions) median ms', mounts[10]!.toFixed(1), 'release median ms', rel[10]!.toFixed(1));

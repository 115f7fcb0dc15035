import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A busybox root: /bin/busybox (static) with its applets, a passwd and an os-release. */
export function makeBusyboxTree(): { dir: string; remove: () => void } {
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find(existsSync);
  if (!busybox) throw new Error('busybox is not installed: apt-get install busybox-static (.ci/run does)');
  const dir = mkdtempSync(join(tmpdir(), 'sd-e2e-busybox-'));
  for (const d of ['bin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev', 'run', 'var']) mkdirSync(join(dir, d));
  copyFileSync(busybox, join(dir, 'bin/busybox'));
  const list = spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const applet of list) if (applet !== 'busybox') symlinkSync('busybox', join(dir, 'bin', applet));
  writeFileSync(
    join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n');
  writeFileSync(join(dir, 'etc/os-release'), 'ID=busybox\nNAME="BusyBox test tree"\n');
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const NSPAWN_CLI = fileURLToPath(new URL('../../packages/nspawn/dist/cli.cjs', import.meta.url));

/** Runs the built sd-nspawn CLI with stdin closed (so --console defaults to pipe). */
export function sdNspawn(args: string[], timeout = 60_000) {
  if (!existsSync(NSPAWN_CLI)) throw new Error(`${NSPAWN_CLI} is missing: run npm run build first`);
  const r = spawnSync(process.execPath, [NSPAWN_CLI, ...args], {
    encoding: 'utf8',
    timeout,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Runs sd-nspawn asynchronously (for containers that must run at the same time). */
export async function sdNspawnAsync(args: string[], timeout = 60_000) {
  const { spawn } = await import('node:child_process');
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [NSPAWN_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sd-nspawn ${args.join(' ')} timed out`));
    }, timeout);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

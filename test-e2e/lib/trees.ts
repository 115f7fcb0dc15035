import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export { makeBusyboxTree } from '../../tools/test/busybox-tree.js';

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
export async function sdNspawnAsync(args: string[], timeout = 60_000, env?: NodeJS.ProcessEnv) {
  const { spawn } = await import('node:child_process');
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [NSPAWN_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
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

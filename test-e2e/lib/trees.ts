import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export { makeBusyboxTree } from '../../tools/test/busybox-tree.js';

// sd-nspawn's bin, as users run it: dist/cli.cjs is built inside the CommonJS wrapper for the bin's
// launcher, and run alone it would do nothing.
export const NSPAWN_CLI = fileURLToPath(new URL('../../packages/nspawn/dist/sd-nspawn.cjs', import.meta.url));

/**
 * --pipe unless the arguments choose a console mode: the tests compare the payload's own stdout and
 * stderr, which the CLI's default off a terminal (read-only: all through the console pty) merges.
 */
export function withConsole(args: string[]): string[] {
  return args.some((a) => a === '-P' || a === '--pipe' || a.startsWith('--console'))
    ? args
    : ['--pipe', ...args];
}

/** Runs the built sd-nspawn CLI with stdin closed, in pipe mode unless the arguments choose one. */
export function sdNspawn(args: string[], timeout = 60_000) {
  if (!existsSync(NSPAWN_CLI)) throw new Error(`${NSPAWN_CLI} is missing: run npm run build first`);
  const r = spawnSync(process.execPath, [NSPAWN_CLI, ...withConsole(args)], {
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
    const child = spawn(process.execPath, [NSPAWN_CLI, ...withConsole(args)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
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

/** The cached Debian bookworm tree with systemd (tools/debian-tree/build.sh builds it once). */
export function debianTree(): string {
  const build = fileURLToPath(new URL('../../tools/debian-tree/build.sh', import.meta.url));
  return execFileSync(build, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 20 * 60_000,
  }).trim();
}

import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/** sd-importd run from source on a test's private bus, for the daemon tests. */

const repo = fileURLToPath(new URL('../../../', import.meta.url));
export const TS = ['--conditions=sd-source', '--import', 'tsx'];
const IMPORTD = join(repo, 'packages/importd/src/importd.ts');

export interface ImportdProc {
  proc: ChildProcess;
  /** Everything it wrote, stdout and stderr. */
  log(): string;
  /** Signals it (SIGTERM by default) and waits for its exit; nothing when it is gone already. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts sd-importd with `--root root` and resolves once it says it is serving (up to 30 s). */
export async function startImportd(root: string, env: NodeJS.ProcessEnv): Promise<ImportdProc> {
  const proc = spawn(process.execPath, [...TS, IMPORTD, '--root', root], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout?.on('data', (d) => (log += d));
  proc.stderr?.on('data', (d) => (log += d));
  const d: ImportdProc = {
    proc,
    log: () => log,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill(signal);
      await exited;
    },
  };
  for (let i = 0; i < 600; i++) {
    if (log.includes('serving')) return d;
    if (proc.exitCode !== null) throw new Error(`sd-importd exited: ${log}`);
    await sleep(50);
  }
  await d.stop('SIGKILL');
  throw new Error(`sd-importd did not start: ${log}`);
}

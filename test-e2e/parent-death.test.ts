import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree, NSPAWN_CLI, sdNspawn } from './lib/trees.js';

// A container never outlives a killed sd-nspawn (nothing would supervise it
// or clean up after it), whatever credentials its payload runs with: a
// change of credentials clears the parent-death signal, so it is armed
// again after the last one.
let tree: ReturnType<typeof makeBusyboxTree>;
beforeAll(() => {
  tree = makeBusyboxTree('sd-e2e-pdeath-');
  // mkdtemp's 0700 would keep --user=nobody out of the tree.
  chmodSync(tree.dir, 0o755);
});
afterAll(() => tree?.remove());

/** Host pids whose command line is exactly `sleep <marker>`. */
function sleepers(marker: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8') === `sleep\0${marker}\0`;
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('kill -9 of sd-nspawn', () => {
  it.each([
    ['as root', []],
    ['under -U', ['-U']],
    ['as another user', ['--user=nobody']],
    ['under -U as another user', ['-U', '--user=nobody']],
  ])('takes the container with it (%s)', async (_what, extra) => {
    const marker = String(4000 + Math.floor(Math.random() * 1000));
    const child = spawn(
      process.execPath,
      [NSPAWN_CLI, '-q', '--pipe', '-D', tree.dir, ...extra, 'sleep', marker],
      {
        stdio: 'ignore',
      },
    );
    const exited = new Promise((r) => child.once('exit', r));
    const machine = basename(tree.dir);
    const held = () => readdirSync('/run/sd-nspawn').filter((f) => f.startsWith(`${machine}.`));
    let pids: number[];
    try {
      for (let i = 0; i < 100 && sleepers(marker).length === 0; i++) await sleep(50);
      pids = sleepers(marker);
      expect(pids).toHaveLength(1);
      // Its notify socket, held by a lock file beside it.
      expect(held().sort()).toEqual([
        expect.stringMatching(/\.notify$/),
        expect.stringMatching(/\.notify\.lock$/),
      ]);
    } finally {
      // Also when an expectation failed: a test must not leave its sd-nspawn running.
      child.kill('SIGKILL');
      await exited;
    }
    for (let i = 0; i < 100 && pids.some((p) => existsSync(`/proc/${p}`)); i++) await sleep(50);
    expect(pids.filter((p) => existsSync(`/proc/${p}`))).toEqual([]);
    // The next start of the same machine works, and takes over what the killed one left (its empty scope).
    const next = sdNspawn(['-q', '-D', tree.dir, ...extra, 'true']);
    expect(next.stderr).toBe('');
    expect(next.code).toBe(0);
    // ... and removed the killed one's socket and lock (its own went at its end).
    expect(held()).toEqual([]);
  });
});

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AT, O, SpawnProgram, spawn } from '../src/index.js';

// A child that shares our memory (CLONE_VM) reads its program from it until
// its execve. Once V8 optimises spawn(), nothing but an explicit reference
// keeps that memory alive across spawn()'s awaits: a collection while the
// child waits frees it, and the child then creates files under whatever
// names the allocator left there (seen once as a stray file with a garbage
// name in a worktree), or corrupts the heap. This test forces the optimised
// spawn() and collects while every child waits.

setFlagsFromString('--expose-gc');
setFlagsFromString('--allow-natives-syntax');
const gc = runInNewContext('gc') as () => void;
const optimizationStatus = new Function('f', 'return %GetOptimizationStatus(f)') as (f: unknown) => number;
const optimizeOnNextCall = new Function(
  'f',
  '%PrepareFunctionForOptimization(f); %OptimizeFunctionOnNextCall(f)',
) as (f: unknown) => void;
const TURBOFANNED = 1 << 4;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'start3-spawn-gc-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('spawn under GC pressure', () => {
  it('keeps a memory-sharing child’s program alive until it has exec’d: no stray or missing files', async () => {
    const runs = 60;
    const churn: Buffer[] = [];
    const expected: string[] = [];
    let optimisedRuns = 0;
    for (let i = 0; i < runs; i++) {
      const name = `file-${i}-${'x'.repeat(48)}`;
      expected.push(name);
      const p = new SpawnProgram();
      // chroot: whatever name a broken program ends up with stays in `dir`.
      p.chroot(dir).chdir('/').waitForParent();
      p.close(p.openat(AT.FDCWD, name, O.CREAT | O.EXCL | O.WRONLY | O.CLOEXEC, 0o644));
      p.exit(0);
      if (i >= 3 && !(optimizationStatus(spawn) & TURBOFANNED)) optimizeOnNextCall(spawn);
      const child = await spawn(p, {
        shareMemory: true,
        beforeRun: async () => {
          // Collect, then fill the freed memory, across a few turns of the loop.
          for (let k = 0; k < 3; k++) {
            gc();
            for (let j = 0; j < 200; j++) churn.push(Buffer.alloc(256 + (j % 8) * 64, 0x41 + (j % 26)));
            if (churn.length > 2000) churn.splice(0, 1500);
            await new Promise((r) => setImmediate(r));
          }
          if (optimizationStatus(spawn) & TURBOFANNED) optimisedRuns++;
        },
      });
      expect(await child.exited).toMatchObject({ code: 0, signal: null });
    }
    expect(readdirSync(dir).sort()).toEqual(expected.sort());
    // The test means something only if the optimised spawn() ran.
    expect(optimisedRuns).toBeGreaterThan(runs / 2);
  }, 60_000);
});

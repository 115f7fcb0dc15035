import { describe, expect, it } from 'vitest';
import { close, pipe, poller, SpawnProgram, spawn, waitReadable, writeAll } from '../src/index.js';

// A child whose answer is due at once is awaited on this thread (briefWaitMs,
// exitedSoon) instead of through the poller's thread; one that is not falls
// back to the poller. Real processes.

describe('brief waits', () => {
  it('waitReadable: true as soon as data is there, false after its time without', () => {
    const [r, w] = pipe();
    try {
      const t0 = performance.now();
      expect(waitReadable(r, 30)).toBe(false);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
      writeAll(w, Buffer.of(1));
      expect(waitReadable(r, 1000)).toBe(true);
    } finally {
      close(r);
      close(w);
    }
  });

  it('exitedSoon reaps a child that ends at once on this thread, never watching it', async () => {
    const child = await spawn(new SpawnProgram().exit(3), { briefWaitMs: 1000 });
    const watched = poller().size;
    const done = child.exitedSoon(1000);
    // Reaped before any await: the status is there, the pidfd was never handed to the poller.
    expect(child.exitStatus).toEqual({ pid: child.pid, code: 3, signal: null });
    expect(poller().size).toBe(watched);
    expect(await done).toEqual(child.exitStatus);
    expect(await child.exited).toEqual(child.exitStatus);
    expect(child.kill()).toBe(false);
  });

  it('without briefWaitMs a child is watched at once: reaped though nobody asks (no zombie)', async () => {
    const child = await spawn(new SpawnProgram().exit(4));
    for (let i = 0; i < 200 && !child.exitStatus; i++) await new Promise((r) => setTimeout(r, 5));
    expect(child.exitStatus).toEqual({ pid: child.pid, code: 4, signal: null });
  });

  it('a child that is not done in time is awaited through the poller', async () => {
    const child = await spawn(new SpawnProgram().execve('/bin/sleep', ['sleep', '0.3'], []), {
      briefWaitMs: 5,
    });
    const done = child.exitedSoon(5);
    expect(child.exitStatus).toBeUndefined();
    expect((await done).code).toBe(0);
  });

  it('spawn with briefWaitMs still reports a failing step', async () => {
    await expect(
      spawn(new SpawnProgram().execve('/nonexistent/sd-brief', ['x'], []), { briefWaitMs: 1000 }),
    ).rejects.toThrow(/ENOENT/);
  });
});

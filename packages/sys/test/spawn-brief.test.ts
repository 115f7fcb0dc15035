import { describe, expect, it } from 'vitest';
import {
  close,
  closeQuietly,
  pipe,
  poller,
  read,
  SpawnProgram,
  spawn,
  waitReadable,
  waitReadableAny,
  writeAll,
} from '../src/index.js';

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

  it('waitReadableAny: which of several fds are readable, as a bit mask', () => {
    const [r1, w1] = pipe();
    const [r2, w2] = pipe();
    try {
      expect(waitReadableAny([r1, r2], 10)).toBe(0);
      writeAll(w2, Buffer.of(1));
      expect(waitReadableAny([r1, r2], 1000)).toBe(0b10);
      writeAll(w1, Buffer.of(1));
      expect(waitReadableAny([r1, r2], 1000)).toBe(0b11);
    } finally {
      closeQuietly(r1, w1, r2, w2);
    }
  });

  it('exitedSoon serves an fd beside the child on this thread until the child ends', async () => {
    // The child writes 'a' beside it and waits for our answer, which onReadable gives; then it
    // writes 'b' and exits. Without the fd served during the wait, the child would never end.
    const [r, w] = pipe();
    const [goR, goW] = pipe();
    const script = 'printf a >&3; read x <&4; printf b >&3; exit 5';
    const program = new SpawnProgram().dup2(w, 3).dup2(goR, 4).execve('/bin/sh', ['sh', '-c', script], []);
    const child = await spawn(program, { briefWaitMs: 1000 });
    close(w);
    close(goR);
    const watched = poller().size;
    const got: string[] = [];
    try {
      const done = child.exitedSoon(5000, {
        fd: r,
        onReadable: () => {
          const b = Buffer.alloc(8);
          const n = read(r, b);
          got.push(b.toString('latin1', 0, n));
          if (n > 0 && got.length === 1) writeAll(goW, Buffer.from('\n'));
        },
      });
      // Reaped on this thread: served twice and ended before any await.
      expect(child.exitStatus).toEqual({ pid: child.pid, code: 5, signal: null });
      expect(got.join('')).toBe('ab');
      expect(poller().size).toBe(watched);
      expect(await done).toEqual(child.exitStatus);
    } finally {
      close(r);
      close(goW);
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

import { describe, expect, it } from 'vitest';
import { close, isatty, pipe } from '../src/fd/fd.js';
import { lazyFunc } from '../src/ffi/libc.js';
import { getRandom } from '../src/proc/random.js';

describe('lazyFunc', () => {
  it('declares on the first call and behaves as the declared function', () => {
    const getpid = lazyFunc('int getpid()');
    expect(getpid()).toBe(process.pid);
    expect(getpid()).toBe(process.pid);
    expect(getpid.info.name).toBe('getpid');
  });

  it('answers .info before any call and keeps Function.prototype (call, apply, bind)', () => {
    const getuid = lazyFunc('int getuid()');
    expect(getuid.info.name).toBe('getuid');
    expect(typeof getuid).toBe('function');
    expect(getuid.call(null)).toBe(process.getuid?.());
    expect(getuid.apply(null, [])).toBe(process.getuid?.());
    expect(getuid.bind(null)()).toBe(process.getuid?.());
  });

  it('supports the syscall-style declaration and .async()', async () => {
    const getppid = lazyFunc('getppid', 'int', []);
    const viaAsync = await new Promise<number>((resolve, reject) =>
      getppid.async((err: unknown, v: number) => (err ? reject(err) : resolve(v))),
    );
    expect(viaAsync).toBe(process.ppid);
    expect(getppid()).toBe(process.ppid);
  });

  it('reports a missing symbol at the first call, not at declaration', () => {
    const missing = lazyFunc('int sd_no_such_function_in_libc(int x)');
    expect(() => missing(1)).toThrow();
  });
});

describe('isatty and getRandom', () => {
  it('isatty is false for a pipe and a closed fd', () => {
    const [r, w] = pipe();
    expect(isatty(r)).toBe(false);
    close(r);
    close(w);
    expect(isatty(r)).toBe(false);
  });

  it('getRandom fills the whole buffer', () => {
    const a = getRandom(4096);
    expect(a.length).toBe(4096);
    expect(a.equals(Buffer.alloc(4096))).toBe(false);
    expect(getRandom(0).length).toBe(0);
  });
});

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLONE,
  close,
  Data,
  HEADER_SIZE,
  MS,
  pipe,
  poller,
  readToEnd,
  SIG,
  SpawnError,
  SpawnProgram,
  spawn,
} from '../src/index.js';
import { ALL_NAMESPACES, containerProgram, fdCount, processExists, writeIdMaps } from './helpers.js';

// Integration tests: real namespaces, as root (CI runs as root).

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sd-spawn-test-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Spawns a container program with its stdout/stderr on a pipe; returns output and exit. */
async function runContainer(argv: string[], hostname = 'sd-test') {
  const [r, w] = pipe();
  const p = containerProgram(dir, hostname, argv, w);
  const child = await spawn(p, {
    cloneFlags: ALL_NAMESPACES,
    beforeRun: (c) => writeIdMaps(c.pid, 0, 1_000_000, 65536),
  }).finally(() => close(w));
  const [out, status] = await Promise.all([readToEnd(r), child.exited]);
  return { out: out.toString(), status, pid: child.pid };
}

describe('spawn', () => {
  it('runs sh in new user, mount, pid, uts, ipc, net and cgroup namespaces', async () => {
    const { out, status } = await runContainer([
      '/bin/sh',
      '-c',
      'echo $$; hostname; id -u; ls /; touch /usr/x 2>&1',
    ]);
    const lines = out.trim().split('\n');
    expect(lines[0]).toBe('1');
    expect(lines[1]).toBe('sd-test');
    expect(lines[2]).toBe('0');
    expect(lines.slice(3, -1).sort()).toEqual(['bin', 'lib', 'lib64', 'proc', 'sbin', 'usr']);
    expect(lines.at(-1)).toMatch(/Read-only file system/);
    expect(status).toMatchObject({ code: 1, signal: null });
  });

  it('runs in a user namespace mapped to a high uid on the host', async () => {
    const { out } = await runContainer(['/bin/sh', '-c', 'cat /proc/self/uid_map']);
    expect(out.trim().split(/\s+/)).toEqual(['0', '1000000', '65536']);
  });

  it('survives 200 spawns in a row under allocation and async fs load, leaking no fd', async () => {
    const before = fdCount();
    let stop = false;
    const garbage: unknown[] = [];
    const alloc = (async () => {
      while (!stop) {
        garbage.push(new Array(10_000).fill({ x: Math.random() }));
        if (garbage.length > 50) garbage.splice(0, 40);
        await new Promise((r) => setImmediate(r));
      }
    })();
    const fsLoad = (async () => {
      let n = 0;
      while (!stop) {
        await Promise.all([readFile('/proc/self/status'), readFile('/etc/os-release')]);
        n++;
      }
      return n;
    })();
    for (let i = 0; i < 200; i++) {
      const { out, status } = await runContainer(['/bin/sh', '-c', 'echo $$'], `box${i}`);
      expect(out).toBe('1\n');
      expect(status.code).toBe(0);
    }
    stop = true;
    await alloc;
    expect(await fsLoad).toBeGreaterThan(0);
    // The poller's own epoll fd and eventfd exist after the first spawn.
    expect(fdCount()).toBeLessThanOrEqual(before + 2);
  });

  it('reports the failing step and its errno, leaving nothing behind', async () => {
    const before = fdCount();
    const p = new SpawnProgram();
    p.mount(null, '/', null, MS.REC | MS.PRIVATE)
      .mount('tmpfs', dir, 'tmpfs', 0, 'mode=0755')
      .mkdir(`${dir}/a`)
      .mkdir(`${dir}/a/b`)
      .mount('proc', `${dir}/no/such/dir`, 'proc', 0)
      .execve('/bin/true', ['true'], []);
    let err: unknown;
    try {
      await spawn(p, { cloneFlags: CLONE.NEWNS | CLONE.NEWPID });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpawnError);
    const se = err as SpawnError;
    expect(se.step).toBe(4);
    expect(se.code).toBe('ENOENT');
    expect(se.syscall).toBe('mount');
    expect(se.message).toContain('no/such/dir');
    expect(fdCount()).toBeLessThanOrEqual(before + 2);
    // The tmpfs lived only in the child's mount namespace.
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
    expect(poller().size).toBe(0);
  });

  it('kills and reaps the child when beforeRun throws', async () => {
    let pid = 0;
    const p = new SpawnProgram();
    p.waitForParent().execve('/bin/true', ['true'], []);
    await expect(
      spawn(p, {
        beforeRun: (c) => {
          pid = c.pid;
          throw new Error('parent setup failed');
        },
      }),
    ).rejects.toThrow('parent setup failed');
    expect(processExists(pid)).toBe(false);
  });

  it('passes exit codes and signals through', async () => {
    for (const code of [0, 1, 42]) {
      const p = new SpawnProgram();
      p.stdio()
        .resetSignals()
        .execve('/bin/sh', ['sh', '-c', `exit ${code}`], []);
      const child = await spawn(p);
      expect((await child.exited).code).toBe(code);
    }
    const p = new SpawnProgram();
    p.resetSignals().execve('/bin/sleep', ['sleep', '100'], []);
    const child = await spawn(p);
    expect(child.kill(9)).toBe(true);
    expect(await child.exited).toMatchObject({ code: null, signal: 9 });
    expect(child.kill(9)).toBe(false);
  });

  it("gives the payload Node's ignored and caught signals back at their defaults, and an empty mask", async () => {
    // Node ignores SIGPIPE; a handler of ours stands for any caught signal (CLONE_CLEAR_SIGHAND's part).
    const onUsr2 = () => {};
    process.on('SIGUSR2', onUsr2);
    try {
      expect(readFileSync('/proc/self/status', 'latin1')).toMatch(/^SigIgn:\s*[0-9a-f]*[1-9a-f][0-9a-f]*$/m);
      const [r, w] = pipe();
      const p = new SpawnProgram();
      p.stdio([0, w, 2])
        .closeOnExecFrom(3)
        .resetSignals()
        .execve('/bin/cat', ['cat', '/proc/self/status'], []);
      const child = await spawn(p).finally(() => close(w));
      const [out, status] = await Promise.all([readToEnd(r), child.exited]);
      expect(status).toMatchObject({ code: 0 });
      const field = (name: string) => new RegExp(`^${name}:\\s*([0-9a-f]+)$`, 'm').exec(out.toString())?.[1];
      for (const name of ['SigIgn', 'SigCgt', 'SigBlk']) expect(BigInt(`0x${field(name)}`), name).toBe(0n);
    } finally {
      process.off('SIGUSR2', onUsr2);
    }
  });

  for (const [label, vm] of [
    ['', 0],
    [', also sharing its memory on a stack of its own (CLONE_VM)', CLONE.VM],
  ] as const)
    it(`follows a forked child: CLONE_PARENT makes it ours, the parent reports its pid and exits${label}`, async () => {
      const [r, w] = pipe();
      const p = new SpawnProgram();
      const tid = new Data(Buffer.alloc(8), 'pid');
      const fork = p.fork(CLONE.PARENT | CLONE.PARENT_SETTID | vm | SIG.CHLD, tid);
      p.waitForParent();
      p.stdio([0, w, 2]);
      p.execve('/bin/sh', ['sh', '-c', 'echo $PPID; exit 7'], []);
      p.reportForkedPid(fork, tid);
      let seen = 0;
      const child = await spawn(p, {
        beforeRun: (c) => {
          seen = c.pid;
        },
      }).finally(() => close(w));
      const [out, status] = await Promise.all([readToEnd(r), child.exited]);
      expect(seen).toBe(child.pid);
      // Its parent is us, not the parent of the fork.
      expect(out.toString().trim()).toBe(String(process.pid));
      expect(status).toMatchObject({ code: 7 });
    });

  it('a fork that shares memory runs on its own stack, 16-byte aligned, and reports its own failure from it', async () => {
    const p = new SpawnProgram();
    const tid = new Data(Buffer.alloc(8), 'pid');
    const fork = p.fork(CLONE.PARENT | CLONE.PARENT_SETTID | CLONE.VM | SIG.CHLD, tid);
    expect(p.describe()[0]).toMatch(/^clone\(\d+, <top of fork stack>, <pid>, 0, 0\)$/);
    p.waitForParent();
    // The forked child's failure is written to the report from the stack the fork gave it.
    p.mkdir('/no/such/dir/x');
    p.reportForkedPid(fork, tid);
    const built = p.build({ reportFd: 3, syncReadFd: 4, syncWriteFd: 5, forkPidFd: 6 });
    const top = built.memory.readBigUInt64LE(HEADER_SIZE + 16);
    expect(top % 16n).toBe(0n);
    expect(top > built.address && top <= built.address + BigInt(built.memory.length)).toBe(true);
    await expect(spawn(p, { beforeRun: () => {} })).rejects.toMatchObject({ syscall: 'mkdirat', errno: 2 });
  });

  it('reports the failure of the parent before its fork', async () => {
    const p = new SpawnProgram();
    p.mkdir('/no/such/dir/x');
    const tid = new Data(Buffer.alloc(8), 'pid');
    const fork = p.fork(CLONE.PARENT | CLONE.PARENT_SETTID | SIG.CHLD, tid);
    p.waitForParent();
    p.execve('/bin/true', ['true'], []);
    p.reportForkedPid(fork, tid);
    await expect(spawn(p, { beforeRun: () => {} })).rejects.toMatchObject({ step: 0, syscall: 'mkdirat' });
  });
});

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLONE,
  close,
  closeQuietly,
  createStubInitMemfd,
  execStubInit,
  fcntl,
  pipe,
  poller,
  read,
  readToEnd,
  SIG,
  SpawnProgram,
  spawn,
} from '../src/index.js';

// Integration tests: the stub init of --as-pid2 as PID 1 of a new PID
// namespace (root, no user namespace), exec'd from its sealed memfd.

let memfd: number;
beforeAll(() => {
  memfd = createStubInitMemfd();
});
afterAll(() => {
  closeQuietly(memfd);
});

/** Starts the stub running `/bin/sh -c script` with stdout and stderr on a pipe. */
async function start(script: string) {
  const [r, w] = pipe();
  const p = new SpawnProgram().stdio([0, w, w]).closeOnExecFrom(3).resetSignals();
  execStubInit(p, memfd, '/bin/sh', ['sh', '-c', script], ['PATH=/usr/bin:/bin']);
  const child = await spawn(p, { cloneFlags: CLONE.NEWPID }).finally(() => close(w));
  return { child, out: r };
}

async function run(script: string) {
  const { child, out } = await start(script);
  const [text, status] = await Promise.all([readToEnd(out), child.exited]);
  return { out: text.toString(), status };
}

/** Reads from `fd` until `text` has appeared. */
async function waitFor(fd: number, text: string): Promise<void> {
  let seen = '';
  const buf = Buffer.alloc(256);
  while (!seen.includes(text)) {
    await poller().readable(fd);
    const n = read(fd, buf);
    if (n === 0) throw new Error(`EOF before ${JSON.stringify(text)}: ${seen}`);
    if (n > 0) seen += buf.subarray(0, n).toString();
  }
}

describe('stub init', () => {
  it('is a sealed memfd', () => {
    const F_GET_SEALS = 1034;
    expect(fcntl(memfd, F_GET_SEALS) & 0xf).toBe(0xf);
  });

  it('runs the payload as PID 2 and exits with its code after it', async () => {
    const { out, status } = await run('echo $$; sleep 0.1 & exit 7');
    expect(out).toBe('2\n');
    expect(status).toMatchObject({ code: 7, signal: null });
  });

  it('keeps the payload argv[0]', async () => {
    const { child, out } = await start('exec cat /proc/self/cmdline');
    const [text] = await Promise.all([readToEnd(out), child.exited]);
    expect(text.toString().split('\0')).toEqual(['cat', '/proc/self/cmdline', '']);
  });

  it('reaps orphans while the payload runs', async () => {
    // The subshell's sleep is orphaned at once and reparented to the stub.
    const { child, out } = await start('(sleep 0.05 &); echo started; sleep 0.6');
    await waitFor(out, 'started');
    await new Promise((r) => setTimeout(r, 300));
    const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ');
    expect(children).toHaveLength(1);
    expect(readFileSync(`/proc/${children[0]}/stat`, 'utf8')).toMatch(/^\d+ \(sh\) S /);
    expect((await child.exited).code).toBe(0);
    close(out);
  });

  it('forwards signals to the payload', async () => {
    const { child, out } = await start('trap "exit 3" TERM; echo ready; while :; do sleep 0.05; done');
    await waitFor(out, 'ready');
    child.kill(SIG.TERM);
    expect(await child.exited).toMatchObject({ code: 3, signal: null });
    close(out);
  });

  it('exits with 128 + the signal that killed the payload', async () => {
    expect((await run('kill -9 $$')).status).toMatchObject({ code: 137, signal: null });
    expect((await run('kill -TERM $$')).status).toMatchObject({ code: 143, signal: null });
  });

  it('reports a payload it cannot execute and exits 127', async () => {
    const [r, w] = pipe();
    const p = new SpawnProgram().stdio([0, w, w]).closeOnExecFrom(3).resetSignals();
    execStubInit(p, memfd, '/nonexistent', ['x'], []);
    const child = await spawn(p, { cloneFlags: CLONE.NEWPID }).finally(() => close(w));
    const [text, status] = await Promise.all([readToEnd(r), child.exited]);
    expect(text.toString()).toBe('sd-stub-init: cannot execute /nonexistent: errno 2\n');
    expect(status.code).toBe(127);
  });
});

import { O } from '../../src/constants.js';
import { closeQuietly, pipe, read, setNonBlocking } from '../../src/fd/fd.js';
import { poller } from '../../src/poller/poller.js';
import type { ExitStatus } from '../../src/proc/pidfd.js';
import { SpawnProgram } from '../../src/spawn/program.js';
import { type SpawnOptions, spawn } from '../../src/spawn/spawn.js';

/** Everything a pipe delivers until EOF, read through the poller. */
export function drain(fd: number): Promise<Buffer> {
  setNonBlocking(fd);
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    poller().add(fd, () => {
      try {
        for (;;) {
          const b = Buffer.alloc(4096);
          const n = read(fd, b);
          if (n < 0) return;
          if (n === 0) {
            poller().remove(fd);
            resolve(Buffer.concat(chunks));
            return;
          }
          chunks.push(b.subarray(0, n));
        }
      } catch (e) {
        poller().remove(fd);
        reject(e);
      }
    });
  });
}

export interface Captured {
  status: ExitStatus;
  stdout: string;
  stderr: string;
}

/**
 * Runs `sh -c script` with stdout and stderr captured; `steps` adds steps
 * after the signal reset, right before execve (where seccomp goes).
 */
export async function runSh(
  script: string,
  steps?: (p: SpawnProgram) => void,
  options?: SpawnOptions,
): Promise<Captured> {
  const [outR, outW] = pipe(O.CLOEXEC);
  const [errR, errW] = pipe(O.CLOEXEC);
  let writersOpen = true;
  try {
    const p = new SpawnProgram();
    p.stdio([0, outW, errW]).resetSignals();
    steps?.(p);
    p.execve('/bin/sh', ['sh', '-c', script], ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL=C']);
    const out = drain(outR);
    const err = drain(errR);
    let child: Awaited<ReturnType<typeof spawn>>;
    try {
      child = await spawn(p, options);
    } finally {
      closeQuietly(outW, errW);
      writersOpen = false;
    }
    const [status, stdout, stderr] = await Promise.all([child.exited, out, err]);
    return { status, stdout: stdout.toString(), stderr: stderr.toString() };
  } finally {
    for (const fd of [outR, errR]) poller().remove(fd);
    closeQuietly(outR, errR);
    if (writersOpen) closeQuietly(outW, errW);
  }
}

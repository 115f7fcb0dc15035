import { CLONE, exitCodeOf, SpawnProgram, spawn } from '@sd/sys';
import { describe, expect, it } from 'vitest';

// The first end-to-end check: the kernel, the spawn interpreter and the
// poller together start a process in fresh namespaces and see it exit.
// Runs as root (CI does); with fewer privileges the user namespace still
// lets it run where unprivileged user namespaces are enabled.
const ALL =
  CLONE.NEWUSER | CLONE.NEWNS | CLONE.NEWPID | CLONE.NEWUTS | CLONE.NEWIPC | CLONE.NEWNET | CLONE.NEWCGROUP;

describe('spawn /bin/true in new namespaces', () => {
  it('exits with status 0', async () => {
    const p = new SpawnProgram();
    p.stdio().resetSignals().execve('/bin/true', ['true'], []);
    const child = await spawn(p, { cloneFlags: ALL });
    const status = await child.exited;
    expect(status.pid).toBe(child.pid);
    expect(exitCodeOf(status)).toBe(0);
  });

  it('reports the exit code of a failing command', async () => {
    const p = new SpawnProgram();
    p.stdio().resetSignals().execve('/bin/false', ['false'], []);
    const child = await spawn(p, { cloneFlags: ALL });
    expect(exitCodeOf(await child.exited)).toBe(1);
  });
});

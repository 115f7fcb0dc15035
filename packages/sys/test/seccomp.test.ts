import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostArch } from '../src/arch/index.js';
import { buildFilter, loadFilterStep, SeccompAction } from '../src/seccomp/filter.js';
import { runSh } from './helpers/capture.js';

describe('seccomp filters in spawned children', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sd-seccomp-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes mkdir fail with EPERM while echo works', async () => {
    const filter = buildFilter({
      defaultAction: SeccompAction.ALLOW,
      rules: [
        { syscall: 'mkdir', action: SeccompAction.ERRNO('EPERM') },
        { syscall: 'mkdirat', action: SeccompAction.ERRNO('EPERM') },
      ],
    });
    const target = join(dir, 'denied');
    const r = await runSh(`echo hello; mkdir ${target}`, (p) =>
      loadFilterStep(p, filter, { noNewPrivs: true }),
    );
    expect(r.stdout).toBe('hello\n');
    expect(r.stderr).toMatch(/Operation not permitted/);
    expect(r.status.code).toBe(1);
    expect(existsSync(target)).toBe(false);

    // The same script without the filter does make the directory.
    const ok = await runSh(`mkdir ${target}`);
    expect(ok.status.code).toBe(0);
    expect(existsSync(target)).toBe(true);
  });

  it('kills a process whose calls come from another architecture', async () => {
    const other = hostArch() === 'x86_64' ? 'aarch64' : 'x86_64';
    const filter = buildFilter({ arch: other, defaultAction: SeccompAction.ALLOW, rules: [] });
    const r = await runSh('echo never', (p) => loadFilterStep(p, filter));
    expect(r.status.signal).toBe(31); // SIGSYS from SECCOMP_RET_KILL_PROCESS, at the execve
    expect(r.stdout).toBe('');
  });
});

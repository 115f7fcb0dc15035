import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pruneStaleScopes } from '../src/cgroup/scope.js';

// The scopes that killed sd-nspawns leave behind, on the real cgroup2 tree.

const unified = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((d) => existsSync(`${d}/cgroup.procs`));

describe.skipIf(!unified)('stale machine scopes', () => {
  it('removes empty ones once they are old, keeps busy and fresh ones', async () => {
    const slice = `${unified}/sd-test-slice-${process.pid}`;
    const empty = `${slice}/machine-gone.scope`;
    const nested = `${slice}/machine-nested.scope`;
    const busy = `${slice}/machine-busy.scope`;
    for (const d of [slice, empty, nested, `${nested}/init.scope`, busy]) mkdirSync(d);
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(`${busy}/cgroup.procs`, String(sleeper.pid));
      // Young: nothing goes.
      expect(pruneStaleScopes(slice, 'machine-ours.scope')).toEqual([]);
      const later = Date.now() + 120_000;
      expect(pruneStaleScopes(slice, 'machine-ours.scope', later).sort()).toEqual([empty, nested].sort());
      expect(existsSync(busy)).toBe(true);
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.on('exit', r));
      for (const d of [`${nested}/init.scope`, nested, empty, busy, slice])
        try {
          rmdirSync(d);
        } catch {}
    }
  });
});

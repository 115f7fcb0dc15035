import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  boundingSet,
  CAP,
  capget,
  capset,
  clearAmbientCapabilities,
  dropBoundingSet,
  lastCap,
  NSPAWN_DEFAULT_CAPABILITIES,
  setCapabilities,
  setNoNewPrivileges,
} from '../src/caps/caps.js';
import { SpawnProgram } from '../src/spawn/program.js';
import { SpawnError } from '../src/spawn/spawn.js';
import { runSh } from './helpers/capture.js';

function statusMask(status: string, field: string): bigint {
  const m = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(status);
  if (!m?.[1]) throw new Error(`${field} missing in ${status}`);
  return BigInt(`0x${m[1]}`);
}

describe('capabilities', () => {
  it('reads the sets of this process like /proc does', () => {
    const status = readFileSync('/proc/self/status', 'utf8');
    const caps = capget();
    expect(caps.effective).toBe(statusMask(status, 'CapEff'));
    expect(caps.permitted).toBe(statusMask(status, 'CapPrm'));
    expect(caps.inheritable).toBe(statusMask(status, 'CapInh'));
    expect(capget(process.pid)).toEqual(caps);
    expect(boundingSet()).toBe(statusMask(status, 'CapBnd'));
    expect(lastCap()).toBe(Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8')));
  });

  it('capset of the current sets is accepted', () => {
    const caps = capget();
    capset(caps);
    expect(capget()).toEqual(caps);
  });

  it('capget of a pid that does not exist fails with ESRCH', () => {
    expect(() => capget(0x3ffffffe)).toThrow(/ESRCH/);
  });

  it('drops the bounding set, sets caps and no_new_privs in a spawned child', async () => {
    const keep = NSPAWN_DEFAULT_CAPABILITIES & boundingSet();
    const eff = (1n << BigInt(CAP.CHOWN)) | (1n << BigInt(CAP.KILL));
    const r = await runSh('grep -E "^(Cap|NoNewPrivs)" /proc/self/status', (p) => {
      dropBoundingSet(p, keep);
      clearAmbientCapabilities(p);
      setCapabilities(p, { effective: eff, permitted: eff, inheritable: 0n });
      setNoNewPrivileges(p);
    });
    expect(r.stderr).toBe('');
    expect(r.status.code).toBe(0);
    expect(statusMask(r.stdout, 'CapBnd')).toBe(keep);
    // no_new_privs keeps root's execve from granting more than the capset left.
    expect(statusMask(r.stdout, 'CapPrm')).toBe(eff);
    expect(statusMask(r.stdout, 'CapEff')).toBe(eff);
    expect(statusMask(r.stdout, 'CapAmb')).toBe(0n);
    expect(r.stdout).toMatch(/^NoNewPrivs:\s*1$/m);
  });

  it('names the failing step when a capset is not allowed', async () => {
    const p = new SpawnProgram();
    // Raising a cap outside the permitted set is EPERM.
    setCapabilities(p, { effective: 0n, permitted: 0n, inheritable: 0n });
    setCapabilities(p, { effective: 1n, permitted: 1n, inheritable: 0n });
    p.execve('/bin/true', ['true'], []);
    const err = await import('../src/spawn/spawn.js').then(({ spawn }) => spawn(p)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpawnError);
    expect((err as SpawnError).code).toBe('EPERM');
    expect((err as SpawnError).stepDescription).toMatch(/^capset\(<cap_user_header>, <caps e=0x1/);
  });
});

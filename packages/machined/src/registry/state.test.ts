import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../../tools/test/fuzz.js';
import { cutAtMachineUnit, isMachineScopePath, isMachineUnitPath } from './cgroup.js';
import { formatState, parseState, STATE_FILE_MAX, StateStore, stateProblem } from './state.js';

// State files are input a restarted daemon must survive whatever they hold.

const dir = mkdtempSync(join(tmpdir(), 'sd-robust-statefiles-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const value = fc.string({ unit: 'binary', maxLength: 60 });

describe('state files (property tests)', () => {
  it('round-trip any values through formatState/parseState', () => {
    fc.assert(
      fc.property(value, value, value, (name, root, service) => {
        const rec = { NAME: name || 'x', LEADER: '42', CLASS: 'container', ROOT: root, SERVICE: service };
        const back = parseState(formatState(rec));
        for (const [k, v] of Object.entries(rec)) if (v !== '') expect(back[k]).toBe(v);
      }),
      { seed: 1203, numRuns: fuzzRuns(500) },
    );
  });

  it('loadAll returns one entry per file for any bytes, never throws, and deletes nothing', () => {
    let n = 0;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const sub = join(dir, `d${n++}`);
        const store = new StateStore(sub);
        store.save({ NAME: 'ok', LEADER: '7', LEADER_STARTTIME: '1', CLASS: 'container' });
        writeFileSync(join(sub, 'robfuzz'), bytes);
        const entries = store.loadAll();
        expect(entries.map((e) => e.file).sort()).toEqual(['ok', 'robfuzz']);
        const ok = entries.find((e) => e.file === 'ok')!;
        expect(ok.problem).toBeUndefined();
        const fuzz = entries.find((e) => e.file === 'robfuzz')!;
        // Usable only when it names itself and has a leader with its start time.
        if (fuzz.problem === undefined) expect(stateProblem('robfuzz', fuzz.fields)).toBeUndefined();
        expect(new StateStore(sub).loadAll()).toHaveLength(2);
      }),
      { seed: 1203, numRuns: fuzzRuns(300) },
    );
  });

  it('refuses links and oversized files with their reason', () => {
    const sub = join(dir, 'links');
    const store = new StateStore(sub);
    store.save({ NAME: 'ok', LEADER: '7', LEADER_STARTTIME: '1', CLASS: 'container' });
    symlinkSync(join(sub, 'ok'), join(sub, 'link'));
    writeFileSync(join(sub, 'big'), 'A'.repeat(STATE_FILE_MAX + 1));
    const byFile = Object.fromEntries(store.loadAll().map((e) => [e.file, e.problem]));
    expect(byFile).toEqual({
      ok: undefined,
      link: 'a symbolic link, not followed',
      big: `too large (${STATE_FILE_MAX + 1} bytes)`,
    });
  });

  it('knows a machine scope from any other cgroup', () => {
    expect(isMachineScopePath('machine.slice/machine-a.scope', 'a')).toBe(true);
    expect(isMachineScopePath('/user.slice/x/machine.slice/machine-a.scope', 'a')).toBe(true);
    expect(isMachineScopePath('system.slice/systemd-nspawn@a.service', 'a')).toBe(false);
    expect(
      isMachineUnitPath('system.slice/system-systemd\\x2dnspawn.slice/systemd-nspawn@a.service', 'a'),
    ).toBe(true);
    // A booted guest's systemd sits in init.scope inside its machine's scope when it is registered.
    expect(isMachineUnitPath('machine.slice/machine-a.scope/init.scope', 'a')).toBe(true);
    for (const p of [
      '',
      'machine.slice/machine-b.scope/machine-a.scope',
      '/',
      'machine.slice',
      'machine-a.scope',
      'machine.slice/machine-b.scope',
      'user.slice/machine-a.scope',
    ])
      expect([p, isMachineUnitPath(p, 'a')]).toEqual([p, false]);
  });

  it('cuts a leader’s cgroup at its machine’s unit', () => {
    expect(cutAtMachineUnit('machine.slice/machine-a.scope/init.scope', 'a')).toBe(
      'machine.slice/machine-a.scope',
    );
    expect(cutAtMachineUnit('/x/machine.slice/machine-a.scope/payload', 'a')).toBe(
      '/x/machine.slice/machine-a.scope',
    );
    expect(cutAtMachineUnit('system.slice/systemd-nspawn@a.service/payload', 'a')).toBe(
      'system.slice/systemd-nspawn@a.service',
    );
    expect(cutAtMachineUnit('user.slice/machine-a.scope/x', 'a')).toBe('user.slice/machine-a.scope/x');
  });
});

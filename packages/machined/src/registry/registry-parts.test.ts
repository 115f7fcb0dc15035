import { type CgroupLayout, parseProcCgroup } from '@sd/sys';
import { describe, expect, it } from 'vitest';
import { MachineCgroup } from './cgroup.js';
import { formatState, parseState } from './state.js';

describe('state files', () => {
  it('round-trip, escaping newlines and backslashes', () => {
    const text = formatState({ NAME: 'a', LEADER: '42', CLASS: 'container', ROOT: '/x\\y\nz', SERVICE: '' });
    expect(text).toContain('NAME=a\n');
    expect(text).not.toContain('SERVICE=');
    expect(parseState(text)).toEqual({ NAME: 'a', LEADER: '42', CLASS: 'container', ROOT: '/x\\y\nz' });
  });
});

// Parsing /proc/PID/cgroup and grouping hierarchies by path: @sd/sys's set.test.ts.
describe('the cgroup of a machine', () => {
  it('names the unit from the unified path, else name=systemd', () => {
    const v2: CgroupLayout = { mode: 'v2', unifiedRoot: '/sys/fs/cgroup', controllers: {}, hierarchies: [] };
    const cg = MachineCgroup.fromPlacement(parseProcCgroup('0::/machine.slice/machine-a.scope\n'), v2)!;
    expect([cg.unit, cg.mainPath, cg.dirs]).toEqual([
      'machine-a.scope',
      'machine.slice/machine-a.scope',
      ['/sys/fs/cgroup/machine.slice/machine-a.scope'],
    ]);
    expect(MachineCgroup.fromPlacement(parseProcCgroup('0::/\n'), v2)).toBeUndefined();
  });
});

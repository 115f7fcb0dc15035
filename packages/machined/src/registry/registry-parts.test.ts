import { parseProcCgroup } from '@sd/sys';
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

describe('cgroups of a process', () => {
  const text =
    '9:name=systemd:/machine.slice/machine-a.scope\n4:memory:/user/machine.slice/machine-a.scope\n3:cpuset:/\n0::/machine.slice/machine-a.scope\n';
  it('parses /proc/PID/cgroup', () => {
    expect(parseProcCgroup(text)).toEqual({
      unified: 'machine.slice/machine-a.scope',
      v1: {
        'name=systemd': 'machine.slice/machine-a.scope',
        memory: 'user/machine.slice/machine-a.scope',
        cpuset: '',
      },
    });
  });
  it('groups hierarchies by path and names the unit from the unified path', () => {
    const cg = MachineCgroup.fromPlacement(parseProcCgroup(text), {
      mode: 'hybrid',
      unifiedRoot: '/sys/fs/cgroup/unified',
      controllers: {},
      hierarchies: [
        { mountPoint: '/sys/fs/cgroup/systemd', controllers: ['name=systemd'], root: '/' },
        { mountPoint: '/sys/fs/cgroup/memory', controllers: ['memory'], root: '/' },
        { mountPoint: '/sys/fs/cgroup/cpuset', controllers: ['cpuset'], root: '/' },
      ],
    })!;
    expect(cg.unit).toBe('machine-a.scope');
    expect(cg.dirs).toEqual([
      '/sys/fs/cgroup/unified/machine.slice/machine-a.scope',
      '/sys/fs/cgroup/systemd/machine.slice/machine-a.scope',
      '/sys/fs/cgroup/memory/user/machine.slice/machine-a.scope',
    ]);
  });
});

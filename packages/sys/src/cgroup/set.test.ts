import { describe, expect, it } from 'vitest';
import type { CgroupLayout } from './detect.js';
import { CgroupSet, parseProcCgroup } from './set.js';

const hybrid: CgroupLayout = {
  mode: 'hybrid',
  unifiedRoot: '/sys/fs/cgroup/unified',
  controllers: {},
  hierarchies: [
    { mountPoint: '/sys/fs/cgroup/systemd', controllers: ['name=systemd'], root: '/' },
    { mountPoint: '/sys/fs/cgroup/memory', controllers: ['memory'], root: '/' },
    { mountPoint: '/sys/fs/cgroup/cpu,cpuacct', controllers: ['cpu', 'cpuacct'], root: '/' },
  ],
};

describe('parseProcCgroup', () => {
  it('reads the unified path and each v1 hierarchy by its controller list', () => {
    expect(parseProcCgroup('9:name=systemd:/a/b\n4:memory:/sup/x/\n3:cpu,cpuacct:/\n0::/a/b\n')).toEqual({
      unified: 'a/b',
      v1: { 'name=systemd': 'a/b', memory: 'sup/x', 'cpu,cpuacct': '' },
    });
    expect(parseProcCgroup('garbage\n4:memory:/m\n').unified).toBeUndefined();
  });
});

describe('CgroupSet.at', () => {
  const p = parseProcCgroup('9:name=systemd:/a.scope\n4:memory:/sup/a.scope\n3:cpu,cpuacct:/\n0::/a.scope\n');

  it('one Cgroup per distinct path, unified first; hierarchies at their root are left out', () => {
    const set = CgroupSet.at(p, hybrid);
    expect(set.groups.map((g) => g.path)).toEqual(['a.scope', 'a.scope', 'sup/a.scope']);
    expect(set.dirs).toEqual([
      '/sys/fs/cgroup/unified/a.scope',
      '/sys/fs/cgroup/systemd/a.scope',
      '/sys/fs/cgroup/memory/sup/a.scope',
    ]);
    expect(set.unifiedDir).toBe('/sys/fs/cgroup/unified/a.scope');
  });

  it('below: a unit under the placement in every hierarchy, root included', () => {
    const own = parseProcCgroup('9:name=systemd:/\n4:memory:/sup/x\n3:cpu,cpuacct:/\n0::/\n');
    const set = CgroupSet.at(own, hybrid, { below: 'machine.slice/m.scope' });
    expect(set.dirs).toEqual([
      '/sys/fs/cgroup/unified/machine.slice/m.scope',
      '/sys/fs/cgroup/systemd/machine.slice/m.scope',
      '/sys/fs/cgroup/cpu,cpuacct/machine.slice/m.scope',
      '/sys/fs/cgroup/memory/sup/x/machine.slice/m.scope',
    ]);
    // Co-mounted or same-path hierarchies share one Cgroup.
    expect(set.groups).toHaveLength(3);
  });

  it('a namespaced v1 mount: the path is taken relative to the mount root', () => {
    const layout: CgroupLayout = {
      mode: 'v1',
      unifiedRoot: undefined,
      controllers: {},
      hierarchies: [{ mountPoint: '/sys/fs/cgroup/memory', controllers: ['memory'], root: '/lxc/c1' }],
    };
    const set = CgroupSet.at(parseProcCgroup('4:memory:/lxc/c1/inner\n'), layout, { below: 'u.scope' });
    expect(set.dirs).toEqual(['/sys/fs/cgroup/memory/inner/u.scope']);
  });

  it('pure v2: only the unified hierarchy', () => {
    const v2: CgroupLayout = { mode: 'v2', unifiedRoot: '/sys/fs/cgroup', controllers: {}, hierarchies: [] };
    expect(CgroupSet.at(parseProcCgroup('0::/x.scope\n'), v2).dirs).toEqual(['/sys/fs/cgroup/x.scope']);
    expect(CgroupSet.at(parseProcCgroup('0::/\n'), v2).groups).toHaveLength(0);
  });
});

import { escapeUnitName } from '@sd/basic';
import type { CgroupLayout } from '@sd/sys';
import { describe, expect, it } from 'vitest';
import { ContainerScope, scopeName } from './scope.js';

describe('scope names', () => {
  it('escapes machine names like systemd unit names', () => {
    expect(scopeName('debian-bookworm')).toBe('machine-debian\\x2dbookworm.scope');
    expect(escapeUnitName('a.b')).toBe('a.b');
    expect(escapeUnitName('.x')).toBe('\\x2ex');
  });
});

describe('ContainerScope', () => {
  const layout: CgroupLayout = {
    mode: 'hybrid',
    unifiedRoot: '/sys/fs/cgroup/unified',
    controllers: {
      memory: '/sys/fs/cgroup/memory',
      cpu: '/sys/fs/cgroup/cpu,cpuacct',
      cpuacct: '/sys/fs/cgroup/cpu,cpuacct',
      blkio: '/sys/fs/cgroup/blkio',
      freezer: '/sys/fs/cgroup/freezer',
    },
    hierarchies: [
      { mountPoint: '/sys/fs/cgroup/memory', controllers: ['memory'], root: '/' },
      { mountPoint: '/sys/fs/cgroup/cpu,cpuacct', controllers: ['cpu', 'cpuacct'], root: '/' },
      { mountPoint: '/sys/fs/cgroup/blkio', controllers: ['blkio'], root: '/' },
      { mountPoint: '/sys/fs/cgroup/freezer', controllers: ['freezer'], root: '/' },
    ],
  };
  it('places the scope below our own cgroup in each hierarchy systemd would use', () => {
    const s = new ContainerScope(
      'm-1',
      layout,
      '5:freezer:/\n4:memory:/sup/x\n3:blkio:/\n1:cpu,cpuacct:/\n0::/\n',
    );
    // cpuacct's hierarchy for CPU accounting (co-mounted with cpu here); blkio and freezer are not systemd's to use by default.
    expect(s.dirs).toEqual([
      '/sys/fs/cgroup/unified/machine.slice/machine-m\\x2d1.scope',
      '/sys/fs/cgroup/memory/sup/x/machine.slice/machine-m\\x2d1.scope',
      '/sys/fs/cgroup/cpu,cpuacct/machine.slice/machine-m\\x2d1.scope',
    ]);
    expect(s.unifiedDir).toBe('/sys/fs/cgroup/unified/machine.slice/machine-m\\x2d1.scope');
  });
});

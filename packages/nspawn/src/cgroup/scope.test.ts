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
    controllers: { memory: '/sys/fs/cgroup/memory', cpu: '/sys/fs/cgroup/cpu' },
    hierarchies: [
      { mountPoint: '/sys/fs/cgroup/memory', controllers: ['memory'], root: '/' },
      { mountPoint: '/sys/fs/cgroup/cpu', controllers: ['cpu'], root: '/' },
    ],
  };
  it('places the scope below our own cgroup in each hierarchy', () => {
    const s = new ContainerScope('m-1', layout, '4:memory:/sup/x\n1:cpu:/\n0::/\n');
    expect(s.dirs).toEqual([
      '/sys/fs/cgroup/unified/machine.slice/machine-m\\x2d1.scope',
      '/sys/fs/cgroup/memory/sup/x/machine.slice/machine-m\\x2d1.scope',
      '/sys/fs/cgroup/cpu/machine.slice/machine-m\\x2d1.scope',
    ]);
    expect(s.unifiedDir).toBe('/sys/fs/cgroup/unified/machine.slice/machine-m\\x2d1.scope');
  });
});

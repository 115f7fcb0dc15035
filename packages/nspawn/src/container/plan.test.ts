import { describe, expect, it } from 'vitest';
import { buildContainerProgram, type ContainerPlan } from './plan.js';

function plan(over: Partial<ContainerPlan> = {}): ContainerPlan {
  return {
    staging: '/run/sd-nspawn/c.X/root',
    volatile: 'no',
    usrSymlinks: [],
    mounts: { root: 10, devices: { null: 11, zero: 12 }, osRelease: 13 },
    userNamespace: false,
    networkNamespace: false,
    cgroupNamespace: true,
    hostname: 'c',
    containerUuid: '0123456789abcdef0123456789abcdef',
    exec: { paths: ['/usr/bin/sh', '/bin/sh'], argv: ['sh'], env: ['container=systemd-nspawn'] },
    workingDirectory: '/root',
    workingDirectoryRequired: false,
    uid: 0,
    gid: 0,
    groups: [],
    consoleAsStdio: false,
    keepCapabilities: 0xfdecafffn,
    lastCap: 40,
    noNewPrivileges: false,
    ...over,
  };
}

const names = (p: ContainerPlan) => buildContainerProgram(p).steps.map((s) => s.name);
const described = (p: ContainerPlan) => buildContainerProgram(p).describe();

describe('container plan', () => {
  it('writes nothing by path before pivot_root: a planted symlink cannot reach the host', () => {
    for (const volatile of ['no', 'yes', 'state', 'overlay'] as const) {
      const steps = described(plan({ volatile }));
      const pivot = steps.findIndex((s) => s.startsWith('pivot_root'));
      expect(pivot).toBeGreaterThan(0);
      for (const s of steps.slice(0, pivot)) {
        if (/^(mkdirat|openat|symlinkat|mknodat|unlinkat)\(/.test(s))
          expect(s).toContain('/run/sd-nspawn/c.X/root');
      }
    }
  });

  it('makes proc and sysfs before pivot_root and attaches them after', () => {
    const steps = described(plan());
    const pivot = steps.findIndex((s) => s.startsWith('pivot_root'));
    expect(steps.indexOf('fsopen("proc", 1)')).toBeLessThan(pivot);
    expect(steps.findIndex((s) => s.includes('"/proc", 4)'))).toBeGreaterThan(pivot);
    expect(steps).toContain('mount(NULL, "/proc/sys", NULL, 4143, NULL)');
  });

  it('joins the user namespace as its root first, and ends in the $PATH search', () => {
    const n = names(plan({ userNamespace: true }));
    expect(n.slice(0, 7)).toEqual(['prctl', 'close', 'read', 'close', 'setresgid', 'setresuid', 'setgroups']);
    expect(n.slice(-2)).toEqual(['execve', 'execve']);
    const p = buildContainerProgram(plan());
    expect(p.steps.at(-2)?.ignoreErrno).toBe(true);
    expect(p.steps.at(-1)?.ignoreErrno).toBe(false);
  });

  it('brings lo up only with a network namespace, and binds /proc/sys/net writable there', () => {
    expect(names(plan())).not.toContain('sendto');
    const steps = described(plan({ networkNamespace: true }));
    expect(steps.some((s) => s.startsWith('sendto('))).toBe(true);
    expect(steps).toContain('mount("/proc/sys/net", "/proc/sys/net", NULL, 4096, NULL)');
  });

  it('drops every capability not kept, loads seccomp before changing user', () => {
    const p = buildContainerProgram(
      plan({ uid: 1000, gid: 1000, seccomp: Buffer.alloc(8), keepCapabilities: 1n }),
    );
    const steps = p.describe();
    const drops = steps.filter((s) => s.startsWith('prctl(24,'));
    expect(drops).toHaveLength(40);
    expect(steps.findIndex((s) => s.startsWith('seccomp('))).toBeLessThan(
      steps.findIndex((s) => s.startsWith('setresuid(1000')),
    );
  });

  it('uses the console as stdio and controlling terminal when asked', () => {
    const steps = described(plan({ consoleAsStdio: true, mounts: { root: 10, devices: {}, console: 20 } }));
    expect(steps).toContain('move_mount(20, "", -100, "/dev/console", 4)');
    expect(steps.some((s) => s.startsWith('ioctl($') && s.includes(', 21518,'))).toBe(true);
  });
});

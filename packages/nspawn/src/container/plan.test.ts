import { describe, expect, it } from 'vitest';
import { buildContainerProgram, buildProcProgram, type ContainerPlan } from './plan.js';

function plan(over: Partial<ContainerPlan> = {}): ContainerPlan {
  return {
    staging: '/run/sd-nspawn',
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
  // The plan-level half of the planted-link rule (test-e2e/planted-links.test.ts is the end-to-end one):
  // before pivot_root, every path the child names is the runtime directory or our own tmpfs on it.
  const BEFORE_PIVOT = new Set([
    'prctl',
    'close',
    'read',
    'unshare',
    'setresgid',
    'setresuid',
    'setgroups',
    'mount',
    'move_mount',
    'mkdirat',
    'fsopen',
    'fsconfig',
    'fsmount',
    'chdir',
    'pivot_root',
  ]);
  it('names no path but the runtime directory and its tmpfs before pivot_root: a planted symlink cannot reach the host', () => {
    const staging = '/run/sd-nspawn';
    const custom = {
      binds: [{ fd: 20, destination: '/b', file: false }],
      tmpfs: [{ destination: '/t', options: 'mode=0755' }],
      overlays: [{ lower: ['/l1', '/l2'], destination: '/o', readOnly: true }],
      inaccessible: [{ path: '/etc/x', file: true }],
    };
    for (const volatile of ['no', 'yes', 'state', 'overlay'] as const) {
      for (const userNamespace of [false, true]) {
        const steps = described(
          plan({ volatile, userNamespace, custom, usrSymlinks: [{ name: 'bin', target: 'usr/bin' }] }),
        );
        const pivot = steps.findIndex((s) => s.startsWith('pivot_root'));
        expect(pivot).toBeGreaterThan(0);
        const allowed = [staging, ...['lower', 'upper', 'work', 'root'].map((d) => `${staging}/${d}`)];
        let checked = 0;
        for (const s of steps.slice(0, pivot)) {
          // A step may carry a label: `label: call(args)`.
          const call = /(?:^|: )([a-z_0-9]+)\(/.exec(s)?.[1];
          expect(BEFORE_PIVOT, `${volatile}: ${s}`).toContain(call);
          if (call === 'fsopen' || call === 'fsconfig') continue;
          // MS_REC|MS_SLAVE on / changes propagation only.
          if (s === 'mount(NULL, "/", NULL, 540672, NULL)') continue;
          for (const [, path] of s.matchAll(/"([^"]*)"/g)) {
            if (!path!.startsWith('/')) continue;
            // Only the directories we made on our own tmpfs: anything deeper is inside the tree,
            // where a planted link could lead anywhere.
            expect(allowed, `${volatile}: ${s}`).toContain(path);
            checked++;
          }
        }
        // The staging attach at least: the loop above cannot pass by checking nothing.
        expect(checked, volatile).toBeGreaterThan(0);
      }
    }
  });

  it('makes proc and sysfs before pivot_root and attaches them after', () => {
    const steps = described(plan());
    const pivot = steps.findIndex((s) => s.startsWith('pivot_root'));
    expect(steps.indexOf('fsopen("proc", 1)')).toBeGreaterThanOrEqual(0);
    expect(steps.indexOf('fsopen("proc", 1)')).toBeLessThan(pivot);
    expect(steps.findIndex((s) => s.includes('"/proc", 4)'))).toBeGreaterThan(pivot);
    expect(steps).toContain('mount(NULL, "/proc/sys", NULL, 4143, NULL)');
  });

  it('with a user namespace: mounts as the host root with the container fs ids, joins it, forks the init, which copies the mount namespace, ends in the $PATH search', () => {
    const ns = { user: 30, uts: 31, ipc: 32, rootUid: 0x80000 };
    const p = buildContainerProgram(plan({ userNamespace: true, namespaces: ns }));
    const d = p.describe();
    const n = p.steps.map((s) => s.name);
    expect(d.slice(0, 6)).toEqual([
      'prctl(1, 9, 0, 0, 0)',
      `setns(31, ${0x04000000})`,
      `setns(32, ${0x08000000})`,
      'prctl(28, 4, 0, 0, 0)',
      `setfsgid(${0x80000})`,
      `setfsuid(${0x80000})`,
    ]);
    // Every mount of the setup comes before the user namespace is joined.
    const join = d.indexOf(`setns(30, ${0x10000000})`);
    expect(join).toBeGreaterThan(n.lastIndexOf('pivot_root'));
    expect(n.slice(join + 1, join + 7)).toEqual([
      'setresgid',
      'setresuid',
      'setgroups',
      'prctl',
      'unshare',
      'clone',
    ]);
    expect(d[join + 5]).toBe(`unshare(${0x20000000})`);
    const fork = join + 6;
    expect(p.steps[fork]?.jump).toBe(p.steps.length - 2);
    // The init: waits for /proc (exits on EOF), then the locked copy.
    expect(n.slice(fork + 1, fork + 6)).toEqual(['prctl', 'close', 'read', 'exit_group', 'close']);
    expect(p.steps[fork + 3]?.jump).toBe(fork + 5);
    expect(d.slice(fork + 6, fork + 8)).toEqual([
      `unshare(${0x02000000})`,
      expect.stringContaining(`unshare(${0x20000})`),
    ]);
    expect(d.some((s) => s.includes('"proc"'))).toBe(false);
    // The parent of the fork: reports the init's pid, exits.
    expect(n.slice(-4)).toEqual(['execve', 'execve', 'write', 'exit_group']);
    expect(p.steps.at(-4)?.ignoreErrno).toBe(true);
    expect(p.steps.at(-3)?.ignoreErrno).toBe(false);
  });

  it('without a user namespace: waits for the parent first, one process, ends in the $PATH search', () => {
    const n = names(plan());
    expect(n.slice(0, 5)).toEqual(['prctl', 'close', 'read', 'close', 'unshare']);
    expect(n).not.toContain('clone');
    expect(n.slice(-2)).toEqual(['execve', 'execve']);
    const p = buildContainerProgram(plan());
    expect(p.steps.at(-2)?.ignoreErrno).toBe(true);
    expect(p.steps.at(-1)?.ignoreErrno).toBe(false);
  });

  it('the /proc program makes proc for the PID namespace of the init, then mounts it in the mount namespace of the setup', () => {
    const d = buildProcProgram({ initPid: 4242, mntFd: 9, networkNamespace: false }).describe();
    const setns = d.indexOf(`setns(9, ${0x20000})`);
    expect(d.findIndex((s) => s.includes('"pidns", "/proc/4242/ns/pid"'))).toBeLessThan(setns);
    expect(d.slice(setns + 1)).toContain('mount(NULL, "/proc/sys", NULL, 4143, NULL)');
    expect(d.at(-1)).toBe('exit_group(0)');
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

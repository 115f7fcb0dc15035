import { readFileSync } from 'node:fs';
import { detectCgroups } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree, sdNspawn } from './lib/trees.js';

// The API file systems a container gets, as systemd's TEST-13-NSPAWN checks
// them: for this host's cgroup layout, with and without a user namespace and a
// network namespace of its own — what is mounted (the mount on top at each
// path), what is read-only, and what the container may really write.

let tree: ReturnType<typeof makeBusyboxTree>;
beforeAll(() => {
  tree = makeBusyboxTree('tst-apifs-');
});
afterAll(() => tree?.remove());

const PATHS = [
  '/proc',
  '/proc/sys',
  '/proc/sys/net',
  '/proc/kallsyms',
  '/proc/keys',
  '/proc/timer_list',
  '/proc/acpi',
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/sys',
  '/sys/fs/cgroup',
  '/dev',
  '/dev/pts',
  '/dev/shm',
  '/dev/mqueue',
  '/run',
  '/run/host',
  '/tmp',
];

/** Tries a write; prints "W path" or "R path". */
const WRITES: Record<string, string> = {
  '/proc/sys/kernel/domainname': 'echo tst > /proc/sys/kernel/domainname',
  '/proc/sys/net/ipv4/ip_forward': 'echo 1 > /proc/sys/net/ipv4/ip_forward',
  '/sys/kernel/mm': 'echo x > /sys/kernel/mm/tst',
  '/sys/fs/cgroup (own subtree)': 'mkdir /sys/fs/cgroup/tst-sub && rmdir /sys/fs/cgroup/tst-sub',
  '/dev/shm': 'touch /dev/shm/x',
  '/run': 'touch /run/x',
  '/tmp': 'touch /tmp/x',
  '/run/host': 'touch /run/host/x',
};

function inside(args: string[]) {
  const script = [
    // The mount on top at each path: the last mountinfo line for it.
    `for p in ${PATHS.join(' ')}; do awk -v p="$p" '$5 == p { t = $(NF-2); o = substr($6, 1, 2) } END { print "M", p, (t == "" ? "-" : t), (o == "" ? "-" : o) }' /proc/self/mountinfo; done`,
    ...Object.entries(WRITES).map(([k, cmd]) => `(${cmd}) 2>/dev/null && echo "W ${k}" || echo "R ${k}"`),
    'grep ^CapBnd /proc/self/status',
  ].join('\n');
  const r = sdNspawn(['-q', '-D', tree.dir, '--machine=tst-apifs', ...args, 'sh', '-c', script]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const mounts: Record<string, string> = {};
  const writable: Record<string, boolean> = {};
  let capBnd = 0n;
  for (const line of r.stdout.trim().split('\n')) {
    if (line.startsWith('M ')) {
      const [, p, type, ro] = line.split(' ');
      mounts[p!] = `${type} ${ro}`;
    } else if (/^[WR] /.test(line)) writable[line.slice(2)] = line[0] === 'W';
    else if (line.startsWith('CapBnd:')) capBnd = BigInt(`0x${line.split(/\s+/)[1]}`);
  }
  return { mounts, writable, netAdmin: ((capBnd >> 12n) & 1n) === 1n };
}

const layout = detectCgroups();

describe(`API file systems on this host (cgroup ${layout.mode})`, () => {
  for (const userns of [false, true])
    for (const netns of [false, true]) {
      const args = [...(userns ? ['-U'] : []), ...(netns ? ['--private-network'] : [])];
      it(`${userns ? '-U' : 'no user namespace'}, ${netns ? '--private-network' : 'host network'}`, () => {
        const hostForward = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
        const got = inside(args);
        expect(got.mounts).toEqual({
          '/proc': 'proc rw',
          '/proc/sys': 'proc ro',
          // Its own network namespace's sysctls are the container's.
          '/proc/sys/net': netns ? 'proc rw' : '- -',
          '/proc/kallsyms': 'tmpfs ro',
          '/proc/keys': 'tmpfs ro',
          '/proc/timer_list': 'tmpfs ro',
          '/proc/acpi': 'proc ro',
          '/proc/bus': 'proc ro',
          '/proc/fs': 'proc ro',
          '/proc/irq': 'proc ro',
          '/sys': 'sysfs ro',
          // The container gets the unified hierarchy, its own scope as root (cgroup namespace).
          '/sys/fs/cgroup': 'cgroup2 rw',
          '/dev': 'tmpfs rw',
          '/dev/pts': 'devpts rw',
          '/dev/shm': 'tmpfs rw',
          '/dev/mqueue': 'mqueue rw',
          '/run': 'tmpfs rw',
          '/run/host': 'tmpfs ro',
          '/tmp': 'tmpfs rw',
        });
        expect(got.writable).toEqual({
          '/proc/sys/kernel/domainname': false,
          '/proc/sys/net/ipv4/ip_forward': netns,
          '/sys/kernel/mm': false,
          '/sys/fs/cgroup (own subtree)': true,
          '/dev/shm': true,
          '/run': true,
          '/tmp': true,
          '/run/host': false,
        });
        // CAP_NET_ADMIN only for a network of its own (systemd-nspawn's rule).
        expect(got.netAdmin).toBe(netns);
        expect(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8')).toBe(hostForward);
      });
    }
});

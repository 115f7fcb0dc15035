import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { AT, CLONE, MNT, MOUNT_ATTR, MS, SpawnProgram } from '../src/index.js';

/** The namespaces a container gets: user, mount, pid, uts, ipc, net, cgroup. */
export const ALL_NAMESPACES =
  CLONE.NEWUSER | CLONE.NEWNS | CLONE.NEWPID | CLONE.NEWUTS | CLONE.NEWIPC | CLONE.NEWNET | CLONE.NEWCGROUP;

/** Writes a uid/gid map for a child that waits in waitForParent(). */
export function writeIdMaps(pid: number, inside: number, outside: number, count: number): void {
  writeFileSync(`/proc/${pid}/uid_map`, `${inside} ${outside} ${count}\n`);
  writeFileSync(`/proc/${pid}/setgroups`, 'allow\n');
  writeFileSync(`/proc/${pid}/gid_map`, `${inside} ${outside} ${count}\n`);
}

/**
 * A program that builds a container root in `root` (a tmpfs holding the
 * host's /usr bound read-only), becomes uid 0 of its user namespace, mounts
 * /proc, sets the hostname, pivots into it and execs `argv` with stdout and
 * stderr on `output` when given.
 */
export function containerProgram(
  root: string,
  hostname: string,
  argv: string[],
  output?: number,
): SpawnProgram {
  const p = new SpawnProgram();
  p.waitForParent()
    .setresgid(0)
    .setresuid(0)
    .setgroups([])
    .mount(null, '/', null, MS.REC | MS.PRIVATE)
    .mount('tmpfs', root, 'tmpfs', MS.NOSUID | MS.NODEV, 'mode=0755')
    .mkdir(`${root}/usr`)
    .mkdir(`${root}/proc`)
    .mount('/usr', `${root}/usr`, null, MS.BIND | MS.REC)
    .mountSetattr(AT.FDCWD, `${root}/usr`, AT.RECURSIVE, { set: MOUNT_ATTR.RDONLY })
    .symlink('usr/bin', `${root}/bin`)
    .symlink('usr/lib', `${root}/lib`)
    .symlink('usr/lib64', `${root}/lib64`)
    .symlink('usr/sbin', `${root}/sbin`)
    .mount('proc', `${root}/proc`, 'proc', MS.NOSUID | MS.NODEV | MS.NOEXEC)
    .sethostname(hostname)
    .chdir(root)
    .pivotRoot('.', '.')
    .umount('.', MNT.DETACH)
    .chdir('/')
    .stdio([0, output ?? 1, output ?? 2])
    .resetSignals()
    .execve(argv[0]!, argv, ['PATH=/usr/bin:/bin', 'container=sd-test']);
  return p;
}

/** Open fds of this process (to prove nothing leaks). */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

export function processExists(pid: number): boolean {
  try {
    readFileSync(`/proc/${pid}/stat`);
    return true;
  } catch {
    return false;
  }
}

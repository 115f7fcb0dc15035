import { AT, CLONE, MOUNT_ATTR, MOVE_MOUNT, MS, O, S_IF, type Slot, SpawnProgram } from '@sd/sys';
import type { ContainerPlan } from './plan.js';

/**
 * The mounts of the container's setup program (plan.ts): its root on the
 * runtime directory (ContainerPlan.staging), /proc (and the helper that mounts it under a user
 * namespace), /sys, /dev, /run/host, and the small steps they share.
 */

export const ignore = { ignoreErrno: true };

export const PROC_INACCESSIBLE = [
  '/proc/kallsyms',
  '/proc/kcore',
  '/proc/keys',
  '/proc/sysrq-trigger',
  '/proc/timer_list',
];

export const PROC_READ_ONLY = [
  '/proc/acpi',
  '/proc/apm',
  '/proc/asound',
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/scsi',
];

export const RO_REMOUNT = MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NOEXEC | MS.NODEV;

export const INACCESSIBLE = '/run/.sd-inaccessible';

export function tmp(p: SpawnProgram): void {
  p.mount('tmpfs', '/tmp', 'tmpfs', MS.NOSUID | MS.NODEV | MS.STRICTATIME, 'mode=01777');
}

/** Puts the container's root file system on ContainerPlan.staging. */
export function assembleRoot(p: SpawnProgram, plan: ContainerPlan): void {
  const { staging, mounts } = plan;
  switch (plan.volatile) {
    case 'no':
    case 'state':
      attach(p, mounts.root, staging);
      break;
    case 'yes':
      // A tmpfs root; the tree's /usr joins after pivot_root.
      p.mount('tmpfs', staging, 'tmpfs', MS.NOSUID | MS.NODEV | MS.STRICTATIME, 'mode=0755');
      break;
    case 'overlay':
      // tmpfs holding upper/work, the tree below, the overlay on top.
      p.mount('tmpfs', staging, 'tmpfs', MS.NOSUID | MS.NODEV | MS.STRICTATIME, 'mode=0755');
      for (const d of ['lower', 'upper', 'work', 'root']) p.mkdir(`${staging}/${d}`, 0o755);
      attach(p, mounts.root, `${staging}/lower`);
      p.mount(
        'overlay',
        `${staging}/root`,
        'overlay',
        0,
        `lowerdir=${staging}/lower,upperdir=${staging}/upper,workdir=${staging}/work`,
      );
      break;
  }
}

/**
 * /proc: the instance, /proc/sys read-only (its net/ part writable in a
 * network namespace of the container's own), the files that leak kernel
 * internals masked, some directories read-only. The mask file exists
 * already (INACCESSIBLE).
 */
export function procMounts(p: SpawnProgram, networkNamespace: boolean, proc: Slot): void {
  attach(p, proc, '/proc');
  p.close(proc);
  p.mount('/proc/sys', '/proc/sys', null, MS.BIND);
  if (networkNamespace) p.mount('/proc/sys/net', '/proc/sys/net', null, MS.BIND);
  p.mount(null, '/proc/sys', null, RO_REMOUNT);
  for (const f of PROC_INACCESSIBLE) {
    p.mount(INACCESSIBLE, f, null, MS.BIND, null, ignore);
    p.mount(null, f, null, RO_REMOUNT, null, ignore);
  }
  for (const d of PROC_READ_ONLY) {
    p.mount(d, d, null, MS.BIND, null, ignore);
    p.mount(null, d, null, RO_REMOUNT, null, ignore);
  }
}

export function sys(p: SpawnProgram, plan: ContainerPlan, sysfs: Slot | undefined): void {
  if (sysfs) {
    attach(p, sysfs, '/sys');
    p.close(sysfs);
  } else if (plan.mounts.sys !== undefined) {
    attach(p, plan.mounts.sys, '/sys');
  }
}

/**
 * With a user namespace: the program that mounts the container's /proc,
 * run by the host's root once the container's PID namespace has its init
 * (`initPid`, waiting), into the mount namespace the setup was made in
 * (`mntFd`, of the host's user namespace), before the init copies it.
 */
export function buildProcProgram(o: {
  initPid: number;
  mntFd: number;
  networkNamespace: boolean;
}): SpawnProgram {
  const p = new SpawnProgram();
  p.prctl(1 /* PR_SET_PDEATHSIG */, 9);
  // Made here, where the host's /proc names the PID namespace; mounted there.
  const proc = p.newMount('proc', MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV | MOUNT_ATTR.NOEXEC, {
    pidns: `/proc/${o.initPid}/ns/pid`,
  });
  p.setns(o.mntFd, CLONE.NEWNS);
  p.chdir('/');
  procMounts(p, o.networkNamespace, proc);
  return p.exit(0);
}

export function dev(p: SpawnProgram, plan: ContainerPlan): void {
  p.mount('tmpfs', '/dev', 'tmpfs', MS.NOSUID | MS.STRICTATIME, 'mode=0755');
  for (const d of ['/dev/pts', '/dev/shm', '/dev/mqueue', '/dev/net']) p.mkdir(d, 0o755);
  for (const [name, fd] of Object.entries(plan.mounts.devices)) {
    touch(p, `/dev/${name}`);
    attach(p, fd, `/dev/${name}`);
  }
  // The tty group as the container numbers it (its gid 5 is the host's rootUid + 5).
  const tty = (plan.namespaces?.rootUid ?? 0) + 5;
  p.mount(
    'devpts',
    '/dev/pts',
    'devpts',
    MS.NOSUID | MS.NOEXEC,
    `newinstance,ptmxmode=0666,mode=0620,gid=${tty}`,
  );
  p.symlink('pts/ptmx', '/dev/ptmx');
  p.mount('tmpfs', '/dev/shm', 'tmpfs', MS.NOSUID | MS.NODEV | MS.STRICTATIME, 'mode=01777');
  p.mount('mqueue', '/dev/mqueue', 'mqueue', MS.NOSUID | MS.NODEV | MS.NOEXEC, null, ignore);
  p.symlink('/proc/self/fd', '/dev/fd');
  p.symlink('/proc/self/fd/0', '/dev/stdin');
  p.symlink('/proc/self/fd/1', '/dev/stdout');
  p.symlink('/proc/self/fd/2', '/dev/stderr');
  p.symlink('/proc/kcore', '/dev/core', ignore);
  if (plan.mounts.console !== undefined) {
    touch(p, '/dev/console');
    attach(p, plan.mounts.console, '/dev/console');
  }
}

/** /run/host: what the container may know of its host (systemd's Container Interface). */
export function runHost(p: SpawnProgram, plan: ContainerPlan): void {
  p.mkdir('/run/host', 0o755);
  writeFile(p, '/run/host/container-manager', 'systemd-nspawn\n');
  writeFile(p, '/run/host/container-uuid', `${formatUuid(plan.containerUuid)}\n`);
  if (plan.mounts.osRelease !== undefined) {
    touch(p, '/run/host/os-release');
    attach(p, plan.mounts.osRelease, '/run/host/os-release');
  }
  if (plan.mounts.notifySocket !== undefined) {
    touch(p, '/run/host/notify');
    attach(p, plan.mounts.notifySocket, '/run/host/notify');
  }
  p.mount('/run/host', '/run/host', null, MS.BIND | MS.REC);
  p.mountSetattr(AT.FDCWD, '/run/host', AT.RECURSIVE, {
    set: MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV,
  });
}

export function attach(
  p: SpawnProgram,
  fd: number | Slot,
  target: string,
  o?: { ignoreErrno: boolean },
): void {
  p.moveMount(fd, '', AT.FDCWD, target, MOVE_MOUNT.F_EMPTY_PATH, o);
}

/**
 * Creates an empty file to mount on. mknod, not open(O_CREAT): whatever the
 * tree has there already (a FIFO that would block, a device node whose open
 * has effects, a symlink) is never opened; EEXIST is then ignored when asked.
 */
export function touch(p: SpawnProgram, path: string, o?: { ignoreErrno: boolean }): void {
  p.mknod(path, S_IF.REG | 0o644, 0, o);
}

export function writeFile(p: SpawnProgram, path: string, content: string): void {
  const fd = p.openat(AT.FDCWD, path, O.CREAT | O.EXCL | O.WRONLY | O.CLOEXEC | O.NOFOLLOW, 0o444);
  p.write(fd, content).close(fd);
}

export function formatUuid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

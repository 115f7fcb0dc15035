import { exitCodeOf, MS, SpawnProgram, spawn } from '../../../packages/sys/src/index.js';
import { ALL_NAMESPACES, pivotInto, privatizeMounts, writeIdMaps } from '../../lib/container.js';
import { elapsedMs, external, type Runner } from '../lib/runners.js';

export type { Runner } from '../lib/runners.js';

/**
 * The spawn benchmark's own contenders (the reference tools are in
 * ../lib/runners.ts): each runs /bin/true in the busybox root once.
 */

/** Ours: a spawn program built per run, from this already-running Node process. */
export function sdSpawnRunner(rootfs: string): Runner {
  return {
    name: 'sd spawn (library)',
    note: 'user+mnt+pid+uts+ipc+net+cgroup ns, uid map, bind root, /proc, pivot_root, hostname',
    async run() {
      const start = process.hrtime.bigint();
      const p = new SpawnProgram();
      p.stdio().waitForParent();
      privatizeMounts(p)
        .mount(rootfs, rootfs, null, MS.BIND | MS.REC)
        .mount('proc', `${rootfs}/proc`, 'proc', MS.NOSUID | MS.NODEV | MS.NOEXEC);
      pivotInto(p, rootfs).sethostname('bench').resetSignals().execve('/bin/true', ['true'], []);
      const child = await spawn(p, {
        cloneFlags: ALL_NAMESPACES,
        // Identity map: root stays root, as with the other tools.
        beforeRun: (c) => writeIdMaps(c.pid, 0, 0, 65536),
      });
      const status = await child.exited;
      const ms = elapsedMs(start);
      if (exitCodeOf(status) !== 0) throw new Error(`/bin/true exited with ${exitCodeOf(status)}`);
      return ms;
    },
  };
}

export function unshareRunner(rootfs: string): Runner {
  return external(
    'unshare -fpmiun --root',
    'pid+mnt+ipc+uts+net ns (no user, no cgroup ns), chroot, no /proc',
    'unshare',
    () => ['-fpmiun', `--root=${rootfs}`, '/bin/true'],
  );
}

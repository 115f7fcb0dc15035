import { AT, MOUNT_ATTR, MOVE_MOUNT, MS, S_IF, type Slot, type SpawnProgram } from '@sd/sys';

/**
 * --bind, --bind-ro, --tmpfs, --overlay(-ro) and --inaccessible inside the
 * container. Host sources come as detached mounts opened by the parent
 * (binds) or as file systems made before pivot_root (overlays, whose options
 * name host paths); everything is attached after pivot_root, by paths that
 * resolve inside the container.
 */

export interface CustomMounts {
  binds: Array<{ fd: number; destination: string; file: boolean }>;
  tmpfs: Array<{ destination: string; options: string }>;
  overlays: Array<{ lower: string[]; upper?: string; work?: string; destination: string; readOnly: boolean }>;
  inaccessible: Array<{ path: string; file: boolean }>;
}

export function noCustomMounts(): CustomMounts {
  return { binds: [], tmpfs: [], overlays: [], inaccessible: [] };
}

const ignore = { ignoreErrno: true };

/** mkdir -p, one step per component; existing ones are fine. */
export function mkdirParents(p: SpawnProgram, path: string, includeLast: boolean): void {
  const parts = path.split('/').filter(Boolean);
  const n = includeLast ? parts.length : parts.length - 1;
  for (let i = 1; i <= n; i++) p.mkdir(`/${parts.slice(0, i).join('/')}`, 0o755, ignore);
}

function mountPoint(p: SpawnProgram, path: string, file: boolean): void {
  mkdirParents(p, path, !file);
  // mknod makes an empty file and never opens what is there (a FIFO, a device node).
  if (file) p.mknod(path, S_IF.REG | 0o644, 0, ignore);
}

/** Before pivot_root: the overlay file systems (their options are host paths). */
export function makeOverlays(p: SpawnProgram, m: CustomMounts): Slot[] {
  return m.overlays.map((o) => {
    // --overlay names the lowest tree first; overlayfs's lowerdir= names the topmost first.
    const options: Record<string, string> = { lowerdir: [...o.lower].reverse().join(':') };
    if (o.upper && o.work) {
      options.upperdir = o.upper;
      options.workdir = o.work;
    }
    return p.newMount('overlay', o.readOnly ? MOUNT_ATTR.RDONLY : 0, options, {
      label: `overlay of ${o.lower.join(':')}${o.upper ? ` with changes in ${o.upper}` : ''} for ${o.destination}`,
    });
  });
}

/** After pivot_root: attach everything at its destination. */
export function attachCustomMounts(
  p: SpawnProgram,
  m: CustomMounts,
  overlays: Slot[],
  inaccessibleFile: string,
): void {
  for (const b of m.binds) {
    mountPoint(p, b.destination, b.file);
    p.moveMount(b.fd, '', AT.FDCWD, b.destination, MOVE_MOUNT.F_EMPTY_PATH, {
      label: `bind mount on ${b.destination}`,
    });
  }
  for (const t of m.tmpfs) {
    mountPoint(p, t.destination, false);
    p.mount('tmpfs', t.destination, 'tmpfs', MS.NOSUID | MS.NODEV, t.options, {
      label: `tmpfs on ${t.destination}`,
    });
  }
  m.overlays.forEach((o, i) => {
    mountPoint(p, o.destination, false);
    p.moveMount(overlays[i]!, '', AT.FDCWD, o.destination, MOVE_MOUNT.F_EMPTY_PATH);
    p.close(overlays[i]!);
  });
  for (const x of m.inaccessible) {
    if (x.file) {
      p.mount(inaccessibleFile, x.path, null, MS.BIND);
      p.mount(null, x.path, null, MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC);
    } else {
      p.mount(
        'tmpfs',
        x.path,
        'tmpfs',
        MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC,
        'mode=000,nr_inodes=1,size=4k',
      );
    }
  }
}

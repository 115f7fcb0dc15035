import { lstatSync, readlinkSync, writeFileSync } from 'node:fs';
import { AT, CLONE, MNT, MOUNT_ATTR, MS, type SpawnProgram } from '../../packages/sys/src/index.js';

/**
 * Helpers shared by the smoke program and the spawn benchmark. They use only
 * @sd/sys's public API: until @sd/nspawn exists, this is how a "container"
 * is put together by hand.
 */

/** Every namespace a container gets. */
export const ALL_NAMESPACES =
  CLONE.NEWUSER | CLONE.NEWNS | CLONE.NEWPID | CLONE.NEWUTS | CLONE.NEWIPC | CLONE.NEWNET | CLONE.NEWCGROUP;

/** Writes the child's uid/gid maps while it waits in waitForParent(). */
export function writeIdMaps(pid: number, inside: number, outside: number, count: number): void {
  const line = `${inside} ${outside} ${count}\n`;
  writeFileSync(`/proc/${pid}/uid_map`, line);
  writeFileSync(`/proc/${pid}/gid_map`, line);
}

/** The host's merged-/usr symlinks (bin -> usr/bin, ...), to recreate in a root that binds /usr. */
export function usrMergeLinks(): Array<[name: string, target: string]> {
  const out: Array<[string, string]> = [];
  for (const name of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    try {
      if (lstatSync(`/${name}`).isSymbolicLink()) out.push([name, readlinkSync(`/${name}`)]);
    } catch {
      // not on this host
    }
  }
  return out;
}

/**
 * Appends the steps that make `dir` (already a mount point in the child's
 * mount namespace) the child's root: pivot_root with the old root stacked
 * underneath, then detached, the trick that needs no put_old directory.
 */
export function pivotInto(p: SpawnProgram, dir: string): SpawnProgram {
  return p.chdir(dir).pivotRoot('.', '.').umount('.', MNT.DETACH).chdir('/');
}

/** Stops mount events from propagating back to the host's namespace. */
export function privatizeMounts(p: SpawnProgram): SpawnProgram {
  return p.mount(null, '/', null, MS.REC | MS.PRIVATE);
}

/** Makes a bind mount read-only with mount_setattr (no remount: locked flags stay as they are). */
export function readOnly(p: SpawnProgram, path: string): SpawnProgram {
  return p.mountSetattr(AT.FDCWD, path, AT.RECURSIVE, { set: MOUNT_ATTR.RDONLY });
}

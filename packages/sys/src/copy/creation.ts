import { readFileSync } from 'node:fs';
import { AT } from '../constants.js';
import { SyscallError } from '../errors.js';
import { fchmod, fchown } from './file.js';
import { statxFull } from './stat.js';
import { fgetxattr } from './xattr.js';

/**
 * What a new entry of a copy already is when it is created, so that the
 * copy can leave out the fchown and fchmod that would change nothing: the
 * owner is the creator (its fsuid, and its fsgid or a setgid directory's
 * group), the mode is the one asked for less the umask — unless a default
 * ACL decides it instead, then the copy always sets the mode.
 */
export interface Creation {
  uid: number;
  gid: number;
  /** The umask; undefined when unknown (then every mode is set). */
  umask: number | undefined;
}

const S_ISGID = 0o2000;
const ENODATA = 61;
const EOPNOTSUPP = 95;

/** The process's umask as /proc says it (reading it with umask(2) would change it for a moment). */
function currentUmask(): number | undefined {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'latin1'));
    return m ? Number.parseInt(m[1]!, 8) : undefined;
  } catch {
    return undefined;
  }
}

function hasDefaultAcl(fd: number): boolean {
  try {
    return fgetxattr(fd, 'system.posix_acl_default') !== undefined;
  } catch (e) {
    if (e instanceof SyscallError && (e.errno === EOPNOTSUPP || e.errno === ENODATA)) return false;
    // Unknown: assume one, so that modes are always set.
    return true;
  }
}

/**
 * The facts for entries created below the open directory `dirFd`. When
 * the copy made that directory itself (`madeByUs`), its owner is the
 * creator's; else the process's effective ids stand in for it.
 */
export function creationFacts(dirFd: number, madeByUs: boolean): Creation {
  const st = statxFull(dirFd, '', AT.EMPTY_PATH);
  const setgid = (st.mode & S_ISGID) !== 0;
  return {
    uid: madeByUs ? st.uid : (process.geteuid?.() ?? -1),
    gid: setgid || madeByUs ? st.gid : (process.getegid?.() ?? -1),
    umask: hasDefaultAcl(dirFd) ? undefined : currentUmask(),
  };
}

/** True when a new entry already has this owner (`uid` undefined: owners are not copied). */
export const ownerAsCreated = (c: Creation | undefined, uid: number | undefined, gid: number): boolean =>
  uid === undefined || (c !== undefined && c.uid === uid && c.gid === gid);

/** The mode to create a file with: its own permission bits when it needs no chown before them, else 0600. */
export function createMode(
  c: Creation | undefined,
  uid: number | undefined,
  gid: number,
  mode: number,
): number {
  return ownerAsCreated(c, uid, gid) ? mode & 0o777 : 0o600;
}

/**
 * Owner and mode of an entry created with mode `created`: chown first (it
 * clears setuid and capabilities), then the mode, each only when it would
 * change something.
 */
export function settle(
  c: Creation | undefined,
  fd: number,
  owner: { uid: number | undefined; gid: number; mode: number },
  created: number,
  path: string,
): void {
  const mine = ownerAsCreated(c, owner.uid, owner.gid);
  if (!mine) fchown(fd, owner.uid!, owner.gid, path);
  if (!mine || madeMode(c, created) !== (owner.mode & 0o7777)) fchmod(fd, owner.mode, path);
}

/** The mode an entry created with `created` has: less the umask; -1 when unknown. */
export function madeMode(c: Creation | undefined, created: number): number {
  return c?.umask === undefined ? -1 : created & 0o777 & ~c.umask;
}

import { chmodSync, fstatSync, mkdirSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { closeQuietly, LOCK, O, open, tryFlock, withNetworkNamespace } from '@sd/sys';

/**
 * Who serves DHCP on a link, and whether sd-networkd-veth runs: flocks on
 * files in a root-only directory, one per network namespace and name.
 *
 *   daemon        held by sd-networkd-veth for its life
 *   dhcp-IFNAME   held by whoever serves DHCP on IFNAME
 *
 * A claim is per network namespace (the file name carries the namespace's
 * inode), so a test's "host" namespace never sees the real host's daemon;
 * it goes with its holder, also after kill -9 (the kernel drops the flock),
 * so there is nothing stale to sweep. Files, not abstract AF_UNIX names:
 * anyone may bind an abstract name, so an unprivileged user could pose as
 * the daemon or squat a link's server; the claim directory and its files
 * are root's (0700/0600).
 */

export const CLAIM_DIR = '/run/sd-networkd-veth/claims';
export const DAEMON_CLAIM = 'daemon';

export function dhcpClaimName(ifname: string): string {
  return `dhcp-${ifname}`;
}

export interface Claim {
  readonly path: string;
  /** Gives the claim up (removes its file while still holding it, then unlocks). */
  release(): void;
}

function netnsInode(netnsFd: number | undefined): number {
  const ino = () => statSync('/proc/thread-self/ns/net').ino;
  return netnsFd === undefined ? ino() : withNetworkNamespace(netnsFd, ino);
}

function claimPath(name: string, netnsFd: number | undefined): string {
  if (!/^[A-Za-z0-9_.:@-]+$/.test(name) || name.length > 64)
    throw new Error(`invalid claim name: ${JSON.stringify(name)}`);
  return `${CLAIM_DIR}/${netnsInode(netnsFd)}-${name}.lock`;
}

const sameFile = (fd: number, path: string) => {
  try {
    return statSync(path).ino === fstatSync(fd).ino;
  } catch {
    return false;
  }
};

/** Takes `name` in the namespace; undefined when someone holds it. */
export function tryClaim(name: string, netnsFd?: number): Claim | undefined {
  const path = claimPath(name, netnsFd);
  mkdirSync(CLAIM_DIR, { recursive: true, mode: 0o700 });
  // Root's alone, also if someone made it before us: nobody else may open (and flock) a claim.
  chmodSync(CLAIM_DIR, 0o700);
  for (;;) {
    const fd = open(path, O.RDWR | O.CREAT | O.CLOEXEC, 0o600);
    if (!tryFlock(fd, LOCK.EX, path)) {
      closeQuietly(fd);
      return undefined;
    }
    // Locked a file its holder removed meanwhile: take the new one.
    if (!sameFile(fd, path)) {
      closeQuietly(fd);
      continue;
    }
    let held = true;
    return {
      path,
      release: () => {
        if (!held) return;
        held = false;
        try {
          unlinkSync(path);
        } catch {
          // Already gone (a checker removed it as stale? not while we hold it): nothing to do.
        }
        closeQuietly(fd);
      },
    };
  }
}

/** Whether someone holds `name` in the namespace. */
export function isClaimed(name: string, netnsFd?: number): boolean {
  const path = claimPath(name, netnsFd);
  let fd: number;
  try {
    fd = open(path, O.RDWR | O.CLOEXEC);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return false;
    throw e;
  }
  try {
    if (!tryFlock(fd, LOCK.EX, path)) return true;
    // A file nobody holds (its holder died): removed while we hold it.
    if (sameFile(fd, path)) unlinkSync(path);
    return false;
  } finally {
    closeQuietly(fd);
  }
}

/** Whether sd-networkd-veth runs in this network namespace (then it serves DHCP on ve-/vz- links). */
export function networkdVethRunning(netnsFd?: number): boolean {
  return isClaimed(DAEMON_CLAIM, netnsFd);
}

/** The claims held in the namespace now (stale files of dead holders are removed on the way). */
export function heldClaims(netnsFd?: number): string[] {
  const prefix = `${netnsInode(netnsFd)}-`;
  let names: string[];
  try {
    names = readdirSync(CLAIM_DIR);
  } catch {
    return [];
  }
  return names
    .filter((f) => f.startsWith(prefix) && f.endsWith('.lock'))
    .map((f) => f.slice(prefix.length, -'.lock'.length))
    .filter((n) => isClaimed(n, netnsFd));
}

/**
 * Removes the files of claims nobody holds, in every namespace (their
 * holders were killed; namespaces that are gone never check their own).
 * Safe against a live claimer: a file is only removed while locked by us.
 */
export function sweepStaleClaims(): void {
  let names: string[];
  try {
    names = readdirSync(CLAIM_DIR);
  } catch {
    return;
  }
  for (const f of names) {
    if (!f.endsWith('.lock')) continue;
    const path = `${CLAIM_DIR}/${f}`;
    let fd: number;
    try {
      fd = open(path, O.RDWR | O.CLOEXEC);
    } catch {
      continue;
    }
    try {
      if (tryFlock(fd, LOCK.EX, path) && sameFile(fd, path)) unlinkSync(path);
    } catch {
      // Gone meanwhile: nothing to sweep.
    } finally {
      closeQuietly(fd);
    }
  }
}

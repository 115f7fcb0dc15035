import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import {
  AT,
  closeQuietly,
  O,
  openInRoot,
  S_IF,
  SdError,
  statAt,
  symlinkat,
  unlinkat,
  writeRegularInRoot,
} from '@sd/sys';
import { hasPrivateNetwork } from '../settings/network.js';
import type { ResolvConfMode, Settings, TimezoneMode } from '../settings/settings.js';

/**
 * --resolv-conf and --timezone: what the container's /etc/resolv.conf and
 * /etc/localtime become. Copies go into the tree through the safe resolver
 * (a planted symlink cannot redirect them); binds are detached mounts the
 * plan attaches after pivot_root; nothing is written into a tree that is
 * read-only or volatile.
 */

const RESOLV_SOURCES: Record<string, string> = {
  host: '/etc/resolv.conf',
  static: '/usr/lib/systemd/resolv.conf',
  uplink: '/run/systemd/resolve/resolv.conf',
  stub: '/run/systemd/resolve/stub-resolv.conf',
};

export interface EtcPlan {
  /** A host file to bind (read-only) over /etc/resolv.conf. */
  resolvConfBind?: string;
  /** A host file to bind over /etc/localtime. */
  localtimeBind?: string;
  /** Notices for the user (a source that is missing...). */
  notices: string[];
}

function treeWritable(settings: Settings): boolean {
  return !settings.readOnly && settings.volatile === 'no';
}

function isSymlinkInTree(rootFd: number, path: string): boolean {
  // O_PATH: nothing is opened for I/O (a FIFO would block a real open).
  let fd: number;
  try {
    fd = openInRoot(rootFd, path, O.PATH | O.NOFOLLOW | O.CLOEXEC);
  } catch {
    return false;
  }
  try {
    return (statAt(fd, '', AT.EMPTY_PATH).mode & S_IF.MT) === S_IF.LNK;
  } finally {
    closeQuietly(fd);
  }
}

/**
 * Writes `content` to `path` inside the tree (replacing a symlink only when
 * asked). Only a regular file is written (writeRegularInRoot): a device node
 * or FIFO planted there is refused with a notice, never opened.
 */
function writeInTree(
  rootFd: number,
  path: string,
  content: Buffer,
  replaceSymlink: boolean,
  notices: string[],
): boolean {
  if (isSymlinkInTree(rootFd, path)) {
    if (!replaceSymlink) return false;
    unlinkInEtc(rootFd, path.replace(/^\/etc\//, ''));
  }
  try {
    writeRegularInRoot(rootFd, path, content, 0o644);
  } catch (e) {
    if (!(e instanceof SdError)) throw e;
    notices.push(`Not writing ${path} in the container: ${e.message}`);
  }
  return true;
}

function resolvMode(settings: Settings): ResolvConfMode {
  if (settings.resolvConf !== 'auto') return settings.resolvConf;
  if (hasPrivateNetwork(settings)) return 'off';
  return treeWritable(settings) ? 'copy-host' : 'bind-host';
}

function timezoneMode(settings: Settings): TimezoneMode {
  if (settings.timezone !== 'auto') return settings.timezone;
  return treeWritable(settings) ? 'symlink' : 'bind';
}

/** The host's zone as /etc/localtime names it (`Europe/Berlin`), if it is a zoneinfo link. */
function hostZone(): string | undefined {
  try {
    const target = readlinkSync('/etc/localtime');
    return /zoneinfo\/(.+)$/.exec(target)?.[1];
  } catch {
    return undefined;
  }
}

export function prepareEtcFiles(settings: Settings, rootFd: number): EtcPlan {
  const plan: EtcPlan = { notices: [] };
  const mode = resolvMode(settings);
  if (mode !== 'off') {
    const [action, which] = mode.split('-') as [string, string | undefined];
    if (action === 'delete') {
      if (treeWritable(settings)) unlinkInEtc(rootFd, 'resolv.conf');
    } else {
      const source = RESOLV_SOURCES[which ?? 'host']!;
      if (!existsSync(source))
        plan.notices.push(`${source} does not exist on the host, not setting up /etc/resolv.conf (${mode}).`);
      else if ((action === 'copy' || action === 'replace') && treeWritable(settings)) {
        if (
          !writeInTree(rootFd, '/etc/resolv.conf', readFileSync(source), action === 'replace', plan.notices)
        )
          plan.notices.push(
            '/etc/resolv.conf in the container is a symlink, not copying (use --resolv-conf=replace-host).',
          );
      } else plan.resolvConfBind = source;
    }
  }

  const tz = timezoneMode(settings);
  const zone = hostZone();
  if (tz === 'delete') {
    if (treeWritable(settings)) unlinkInEtc(rootFd, 'localtime');
  } else if (tz !== 'off' && existsSync('/etc/localtime')) {
    if (tz === 'symlink' && zone && treeWritable(settings)) {
      try {
        closeQuietly(openInRoot(rootFd, `/usr/share/zoneinfo/${zone}`, O.PATH | O.CLOEXEC));
        unlinkInEtc(rootFd, 'localtime');
        withEtc(rootFd, (etc) => symlinkat(`../usr/share/zoneinfo/${zone}`, etc, 'localtime'));
      } catch {
        // The tree lacks the zone: fall back to a bind of the host's file.
        plan.localtimeBind = '/etc/localtime';
      }
    } else if (tz === 'copy' && treeWritable(settings)) {
      writeInTree(rootFd, '/etc/localtime', readFileSync('/etc/localtime'), true, plan.notices);
    } else plan.localtimeBind = '/etc/localtime';
  }
  return plan;
}

/** Opens /etc of the tree (resolved inside it) for *at() calls on its entries. */
function withEtc<T>(rootFd: number, fn: (etc: number) => T): T {
  const etc = openInRoot(rootFd, '/etc', O.PATH | O.DIRECTORY | O.CLOEXEC);
  try {
    return fn(etc);
  } finally {
    closeQuietly(etc);
  }
}

function unlinkInEtc(rootFd: number, name: string): void {
  try {
    withEtc(rootFd, (etc) => unlinkat(etc, name, 0));
  } catch {
    // Already gone, or no /etc: nothing to delete.
  }
}

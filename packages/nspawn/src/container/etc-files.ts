import { existsSync, readlinkSync } from 'node:fs';
import { closeQuietly, O, openInRoot, SdError } from '@sd/sys';
import { hasPrivateNetwork } from '../settings/network.js';
import type { ResolvConfMode, Settings, TimezoneMode } from '../settings/settings.js';
import { EtcChanges } from './etc-changes.js';
import { readHostFile } from './exec.js';

/**
 * --resolv-conf and --timezone: what the container's /etc/resolv.conf and
 * /etc/localtime become. Copies go into the tree through the safe resolver
 * (a planted symlink cannot redirect them) and stay undoable until the
 * container has started (EtcChanges); binds are detached mounts the plan
 * attaches after pivot_root; nothing is written into a tree that is
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
  /**
   * What was changed in the tree: commit() once the container has started,
   * undo() when the start fails (a no-op after commit()).
   */
  changes: EtcChanges;
}

function treeWritable(settings: Settings): boolean {
  return !settings.readOnly && settings.volatile === 'no';
}

/**
 * Writes `content` to /etc/NAME inside the tree (replacing a symlink only
 * when asked). Only a regular file is replaced: a device node, FIFO or
 * directory planted there is refused with a notice, never opened.
 */
function writeInTree(
  changes: EtcChanges,
  name: string,
  content: Buffer,
  replaceSymlink: boolean,
  notices: string[],
): boolean {
  try {
    const kind = changes.kind(name);
    if (kind === 'symlink' && !replaceSymlink) return false;
    if (kind === 'other') throw new SdError('EEXIST', `'/etc/${name}' is not a regular file`);
    // Already so (the usual second start): nothing to write, nothing to undo.
    if (kind === 'regular' && changes.holds(name, content)) return true;
    changes.writeFile(name, content);
  } catch (e) {
    if (!(e instanceof SdError)) throw e;
    notices.push(`Not writing /etc/${name} in the container: ${e.message}`);
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
    // What follows the first "zoneinfo/", on one line. (Not a regex: each compiles at its first use.)
    const at = target.indexOf('zoneinfo/');
    const zone = at < 0 ? '' : target.slice(at + 'zoneinfo/'.length);
    return zone === '' || /* a line break */ zone.includes('\n') || zone.includes('\r') ? undefined : zone;
  } catch {
    return undefined;
  }
}

export function prepareEtcFiles(settings: Settings, rootFd: number): EtcPlan {
  const changes = new EtcChanges(rootFd);
  const plan: EtcPlan = { notices: [], changes };
  try {
    planEtcFiles(settings, rootFd, plan);
  } catch (e) {
    changes.undo();
    throw e;
  }
  return plan;
}

function planEtcFiles(settings: Settings, rootFd: number, plan: EtcPlan): void {
  const { changes } = plan;
  const mode = resolvMode(settings);
  if (mode !== 'off') {
    const [action, which] = mode.split('-') as [string, string | undefined];
    if (action === 'delete') {
      if (treeWritable(settings)) removeInEtc(changes, 'resolv.conf', plan.notices);
    } else {
      const source = RESOLV_SOURCES[which ?? 'host']!;
      if (!existsSync(source))
        plan.notices.push(`${source} does not exist on the host, not setting up /etc/resolv.conf (${mode}).`);
      else if ((action === 'copy' || action === 'replace') && treeWritable(settings)) {
        if (!writeInTree(changes, 'resolv.conf', readHostFile(source), action === 'replace', plan.notices))
          plan.notices.push(
            '/etc/resolv.conf in the container is a symlink, not copying (use --resolv-conf=replace-host).',
          );
      } else plan.resolvConfBind = source;
    }
  }

  const tz = timezoneMode(settings);
  const zone = hostZone();
  if (tz === 'delete') {
    if (treeWritable(settings)) removeInEtc(changes, 'localtime', plan.notices);
  } else if (tz !== 'off' && existsSync('/etc/localtime')) {
    if (tz === 'symlink' && zone && treeWritable(settings)) {
      let linked = false;
      try {
        const fd = openInRoot(rootFd, `/usr/share/zoneinfo/${zone}`, O.PATH | O.CLOEXEC, undefined, {
          missingOk: true,
        });
        if (fd >= 0) {
          closeQuietly(fd);
          changes.symlink('localtime', `../usr/share/zoneinfo/${zone}`);
          linked = true;
        }
      } catch {}
      // The tree lacks the zone: fall back to a bind of the host's file.
      if (!linked) plan.localtimeBind = '/etc/localtime';
    } else if (tz === 'copy' && treeWritable(settings)) {
      writeInTree(changes, 'localtime', readHostFile('/etc/localtime'), true, plan.notices);
    } else plan.localtimeBind = '/etc/localtime';
  }
}

function removeInEtc(changes: EtcChanges, name: string, notices: string[]): void {
  try {
    changes.remove(name);
  } catch (e) {
    if (!(e instanceof SdError)) throw e;
    // No /etc: nothing to delete.
    if (e.code !== 'ENOENT') notices.push(`Not deleting /etc/${name} in the container: ${e.message}`);
  }
}

import { isDigits, SdError } from '@sd/sys';
import { type MachineRef, readFilesInMachine } from '../inspect/read-in-machine.js';

/** A user of a machine, from its own /etc/passwd and /etc/group (read inside its root). */
export interface MachineUser {
  name: string;
  uid: number;
  gid: number;
  groups: number[];
  home: string;
  shell: string;
}

/** passwd and group files larger than this are refused (a machine's own are a few KiB). */
const MAX_PASSWD = 1 << 20;

const VALID_USER = /^[a-z_][a-z0-9_-]{0,30}\$?$/i;

export function isValidUserName(name: string): boolean {
  return name === 'root' || VALID_USER.test(name);
}

export function parsePasswd(text: string, user: string): Omit<MachineUser, 'groups'> | undefined {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7) continue;
    if (f[0] !== user && !(String(Number(user)) === user && f[2] === user)) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    return { name: f[0]!, uid, gid, home: f[5] || '/', shell: f[6] || '/bin/sh' };
  }
  return undefined;
}

export function parseGroups(text: string, user: string): number[] {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4) continue;
    if ((f[3] ?? '').split(',').includes(user)) {
      const gid = Number(f[2]);
      if (Number.isInteger(gid)) out.push(gid);
    }
  }
  return out;
}

/**
 * Looks a user up inside the machine (its passwd and group read by a reader
 * the daemon can abandon); root works without a passwd file.
 */
export async function lookupMachineUser(m: MachineRef, user: string): Promise<MachineUser> {
  const name = user === '' ? 'root' : user;
  if (!isValidUserName(name) && !isDigits(name))
    throw new SdError('EINVAL', `Invalid user name: ${JSON.stringify(user)}`);
  // Both files with one reader: one process less for every shell.
  const [passwd, group] = await readFilesInMachine(m, ['/etc/passwd', '/etc/group'], { max: MAX_PASSWD });
  const entry = parsePasswd(passwd ?? '', name);
  if (!entry) {
    if (name === 'root' || name === '0')
      return { name: 'root', uid: 0, gid: 0, groups: [], home: '/root', shell: '/bin/sh' };
    throw new SdError('ENOENT', `No user '${name}' in the machine`);
  }
  const groups = parseGroups(group ?? '', entry.name);
  return { ...entry, groups: [...new Set([entry.gid, ...groups])] };
}

import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import {
  AT,
  closeQuietly,
  ERRNO,
  getRandom,
  isDigits,
  O,
  openat,
  read,
  readDirFd,
  S_IF,
  SyscallError,
  statxFull,
} from '@sd/sys';

/**
 * machined's state files: one a machine in the state directory, KEY=VALUE
 * lines in the shape of systemd's /run/systemd/machines/NAME, plus what a
 * restarted daemon needs to trust the leader again (its start time) and to
 * know whether the scope is its own. Written atomically: temp file, fsync,
 * rename.
 */

export interface MachineStateRecord {
  NAME: string;
  SCOPE?: string;
  SERVICE?: string;
  ROOT?: string;
  ID?: string;
  LEADER: string;
  LEADER_STARTTIME?: string;
  CLASS: string;
  REALTIME?: string;
  MONOTONIC?: string;
  NETIF?: string;
  SCOPE_OWNED?: string;
  CGROUP?: string;
  STATE?: string;
}

const escapeValue = (v: string): string => v.replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
const unescapeValue = (v: string): string => v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));

export function formatState(rec: MachineStateRecord): string {
  let out = '# This is private data. Do not parse.\n';
  for (const [k, v] of Object.entries(rec))
    if (v !== undefined && v !== '') out += `${k}=${escapeValue(v)}\n`;
  return out;
}

export function parseState(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = unescapeValue(line.slice(eq + 1));
  }
  return out;
}

export function writeFileAtomic(path: string, data: string, mode = 0o644): void {
  const dir = path.slice(0, path.lastIndexOf('/')) || '/';
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = join(dir, `.#${path.slice(dir.length + 1)}${getRandom(6).toString('hex')}`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Largest state file read back: ours are a few hundred bytes. */
export const STATE_FILE_MAX = 64 * 1024;

/** One entry of the state directory at start: its fields, or why it was not used. */
export type StateEntry =
  | { file: string; fields: Record<string, string>; problem?: undefined }
  | { file: string; fields?: Record<string, string>; problem: string };

const { ELOOP } = ERRNO;

/**
 * Reads one state file below `dirFd` without leaving the directory: no
 * symlink is followed (O_NOFOLLOW), a FIFO or device cannot block us
 * (O_NONBLOCK, then regular files only) and the size is capped. Returns
 * the text or why it was refused.
 */
function readStateFile(dirFd: number, name: string): { text: string } | { problem: string } {
  let fd: number;
  try {
    fd = openat(dirFd, name, O.RDONLY | O.NOFOLLOW | O.NONBLOCK | O.NOCTTY | O.CLOEXEC);
  } catch (e) {
    if (e instanceof SyscallError && e.errno === ELOOP) return { problem: 'a symbolic link, not followed' };
    return { problem: `cannot be opened: ${(e as Error).message}` };
  }
  try {
    const st = statxFull(fd, '', AT.EMPTY_PATH);
    if ((st.mode & S_IF.MT) !== S_IF.REG) return { problem: 'not a regular file' };
    if (st.size > BigInt(STATE_FILE_MAX)) return { problem: `too large (${st.size} bytes)` };
    const buf = Buffer.alloc(STATE_FILE_MAX + 1);
    let n = 0;
    for (;;) {
      const r = read(fd, buf.subarray(n));
      if (r <= 0) break;
      n += r;
      if (n > STATE_FILE_MAX) return { problem: 'grew beyond the size limit while read' };
    }
    return { text: buf.toString('utf8', 0, n) };
  } catch (e) {
    return { problem: `cannot be read: ${(e as Error).message}` };
  } finally {
    closeQuietly(fd);
  }
}

/** Why a parsed state file cannot describe a machine, or undefined when it can. */
export function stateProblem(file: string, rec: Record<string, string>): string | undefined {
  if (Object.keys(rec).length === 0) return 'empty or not a state file';
  if (rec.NAME !== file) return `names another machine (${JSON.stringify(rec.NAME ?? '')})`;
  if (!isDigits(rec.LEADER ?? '')) return 'no leader';
  if (!isDigits(rec.LEADER_STARTTIME ?? '')) return 'no leader start time (truncated?)';
  return undefined;
}

export class StateStore {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  save(rec: MachineStateRecord): void {
    writeFileAtomic(join(this.dir, rec.NAME), formatState(rec));
  }

  /** Removes the state file of a machine that ended (only a regular file or a link: never what it points to). */
  remove(name: string): void {
    rmSync(join(this.dir, name), { force: true });
  }

  /**
   * Every entry of the state directory: the machines saved there, and the
   * files that could not be used with the reason. Nothing is deleted here
   * and nothing outside the directory is opened.
   */
  loadAll(): StateEntry[] {
    let dirFd: number;
    try {
      dirFd = openat(AT.FDCWD, this.dir, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC);
    } catch (e) {
      if (e instanceof SyscallError && e.code === 'ENOENT') return [];
      return [{ file: this.dir, problem: `state directory cannot be opened: ${(e as Error).message}` }];
    }
    const out: StateEntry[] = [];
    try {
      for (const { name } of readDirFd(dirFd, this.dir)) {
        // Our own half-written files (a crash between write and rename) and other hidden names.
        if (name.startsWith('.')) continue;
        const r = readStateFile(dirFd, name);
        if ('problem' in r) {
          out.push({ file: name, problem: r.problem });
          continue;
        }
        const fields = parseState(r.text);
        const problem = stateProblem(name, fields);
        out.push(problem ? { file: name, fields, problem } : { file: name, fields });
      }
    } catch (e) {
      out.push({ file: this.dir, problem: `state directory cannot be read: ${(e as Error).message}` });
    } finally {
      closeQuietly(dirFd);
    }
    return out;
  }
}

import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { getRandom } from '@sd/sys';

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

export class StateStore {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  save(rec: MachineStateRecord): void {
    writeFileAtomic(join(this.dir, rec.NAME), formatState(rec));
  }

  remove(name: string): void {
    rmSync(join(this.dir, name), { force: true });
  }

  /** Every saved machine: [file name, fields]; temp files and unreadable files are skipped. */
  loadAll(): Array<[string, Record<string, string>]> {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: Array<[string, Record<string, string>]> = [];
    for (const n of names) {
      if (n.startsWith('.#')) {
        rmSync(join(this.dir, n), { force: true });
        continue;
      }
      if (n.startsWith('.') || n.includes(':')) continue;
      try {
        out.push([n, parseState(readFileSync(join(this.dir, n), 'utf8'))]);
      } catch {}
    }
    return out;
  }
}

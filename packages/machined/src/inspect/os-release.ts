import { readFileSync } from 'node:fs';
import {
  AT,
  closeQuietly,
  O,
  openInRoot,
  openRoot,
  read,
  S_IF,
  SdError,
  SyscallError,
  statAt,
} from '@sd/sys';

/**
 * os-release of a machine, read from its root (/proc/PID/root) with every
 * lookup inside it (openat2 RESOLVE_IN_ROOT): /etc/os-release, else
 * /usr/lib/os-release. Only a regular file of sane size is read, opened
 * non-blocking, so a FIFO planted there cannot hang the daemon.
 */

const MAX_SIZE = 64 * 1024;

/** Parses an os-release (or machine-info) file: KEY=VALUE with shell quoting. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) continue;
    let v = line.slice(eq + 1).trim();
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0]!)) {
      const q = v[0];
      v = v.slice(1, -1);
      if (q === '"') v = v.replace(/\\([\\"$`])/g, '$1');
    } else v = v.replace(/\\(.)/g, '$1');
    out[key] = v;
  }
  return out;
}

/** Reads a small regular file inside a root fd; undefined when it does not exist. */
export function readFileInRoot(rootFd: number, path: string, max = MAX_SIZE): string | undefined {
  let fd: number;
  try {
    fd = openInRoot(rootFd, path, O.RDONLY | O.NONBLOCK | O.NOCTTY);
  } catch (e) {
    if (e instanceof SyscallError && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return undefined;
    throw e;
  }
  try {
    const st = statAt(fd, '', AT.EMPTY_PATH);
    if ((st.mode & S_IF.MT) !== S_IF.REG) throw new SdError('EBADF', `${path} is not a regular file`);
    if (st.size > BigInt(max)) throw new SdError('EFBIG', `${path} is larger than ${max} bytes`);
    const buf = Buffer.alloc(Number(st.size) + 1);
    let n = 0;
    for (;;) {
      const r = read(fd, buf.subarray(n));
      if (r <= 0) break;
      n += r;
      if (n >= buf.length) throw new SdError('EFBIG', `${path} is larger than ${max} bytes`);
    }
    return buf.toString('utf8', 0, n);
  } finally {
    closeQuietly(fd);
  }
}

export function osReleaseInRoot(rootFd: number): Record<string, string> {
  for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
    const text = readFileInRoot(rootFd, p);
    if (text !== undefined) return parseEnvFile(text);
  }
  throw new SdError('ENOENT', 'No os-release information in the machine');
}

/** os-release of the machine whose leader is `pid` (of the host itself for `.host`). */
export function machineOsRelease(pid: number, isHost = false): Record<string, string> {
  if (isHost) {
    for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
      try {
        return parseEnvFile(readFileSync(p, 'utf8'));
      } catch {}
    }
    throw new SdError('ENOENT', 'No os-release information on the host');
  }
  const root = openRoot(`/proc/${pid}/root`);
  try {
    return osReleaseInRoot(root);
  } finally {
    closeQuietly(root);
  }
}

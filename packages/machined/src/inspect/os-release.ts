import { readFileSync } from 'node:fs';
import { SdError } from '@sd/sys';
import { type MachineRef, readFileInMachine } from './read-in-machine.js';

/**
 * os-release of a machine: /etc/os-release, else /usr/lib/os-release, read
 * inside the machine by a reader the daemon can abandon (read-in-machine.ts):
 * only a regular file of sane size, and a FIFO, device node or FUSE file
 * planted there cannot hang the daemon.
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

/** os-release of the machine (`m`), or of the host itself for `.host`. */
export async function machineOsRelease(m: MachineRef, isHost = false): Promise<Record<string, string>> {
  if (isHost) {
    for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
      try {
        return parseEnvFile(readFileSync(p, 'utf8'));
      } catch {}
    }
    throw new SdError('ENOENT', 'No os-release information on the host');
  }
  for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
    const text = await readFileInMachine(m, p, { max: MAX_SIZE });
    if (text !== undefined) return parseEnvFile(text);
  }
  throw new SdError('ENOENT', 'No os-release information in the machine');
}

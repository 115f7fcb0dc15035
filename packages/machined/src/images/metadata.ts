import { closeQuietly, NotRegularFileError, openRoot, readRegularInRoot } from '@sd/sys';
import { ImageNotSupportedError } from './errors.js';
import type { ImageInfo } from './types.js';

/**
 * What an image says about itself — hostname, machine id, machine-info,
 * os-release — read from inside it by the one rule for files in a tree
 * (@sd/sys readRegularInRoot): links resolve inside the image, only a
 * regular file is opened (never a device node, whose data could be a
 * root-only host device's, handed to any caller of these open bus calls),
 * nothing blocks, and at most 64 KiB is read.
 */

const MAX_FILE = 64 * 1024;

/**
 * The contents of `path` inside the tree at `root`, or undefined when it
 * does not exist or is not a regular file (systemd reads image metadata the
 * same way: what cannot be read is absent).
 */
export function readInRoot(root: string, path: string): string | undefined {
  const rootFd = openRoot(root);
  try {
    return readRegularInRoot(rootFd, path, { maxBytes: MAX_FILE })?.toString('utf8');
  } catch (e) {
    if (e instanceof NotRegularFileError) return undefined;
    throw e;
  } finally {
    closeQuietly(rootFd);
  }
}

/** Parses an env-file (os-release, machine-info): KEY=VALUE with shell-like quoting and comments. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) continue;
    let v = line.slice(eq + 1).trim();
    let value = '';
    for (let i = 0; i < v.length; i++) {
      const ch = v[i]!;
      if (ch === '"' || ch === "'") {
        const end = v.indexOf(ch, i + 1);
        const inner = v.slice(i + 1, end < 0 ? v.length : end);
        value += ch === '"' ? inner.replace(/\\(["\\`$])/g, '$1') : inner;
        i = end < 0 ? v.length : end;
      } else if (ch === '\\' && i + 1 < v.length) {
        value += v[++i];
      } else if (ch === '#' && /\s/.test(v[i - 1] ?? '')) {
        break;
      } else {
        value += ch;
      }
    }
    v = value.trimEnd();
    out[key] = v;
  }
  return out;
}

function requireTree(img: ImageInfo, what: string): void {
  if (img.type === 'raw' || img.type === 'block')
    throw new ImageNotSupportedError(
      img.name,
      `Reading the ${what} of ${img.type} images is not supported yet`,
    );
}

/** /etc/hostname: the first line that is not a comment; '' when there is none. */
export function imageHostname(img: ImageInfo): string {
  requireTree(img, 'hostname');
  const text = readInRoot(img.path, '/etc/hostname') ?? '';
  for (const l of text.split('\n')) {
    const line = l.trim();
    if (line !== '' && !line.startsWith('#')) return line;
  }
  return '';
}

/** /etc/machine-id as 16 bytes; empty when unset or invalid ("uninitialized"). */
export function imageMachineId(img: ImageInfo): Buffer {
  requireTree(img, 'machine ID');
  const text = (readInRoot(img.path, '/etc/machine-id') ?? '').trim();
  return /^[0-9a-fA-F]{32}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.alloc(0);
}

export function imageMachineInfo(img: ImageInfo): Record<string, string> {
  requireTree(img, 'machine info');
  return parseEnvFile(readInRoot(img.path, '/etc/machine-info') ?? '');
}

/** /etc/os-release, else /usr/lib/os-release. */
export function imageOsRelease(img: ImageInfo): Record<string, string> {
  requireTree(img, 'OS release');
  const text = readInRoot(img.path, '/etc/os-release') ?? readInRoot(img.path, '/usr/lib/os-release') ?? '';
  return parseEnvFile(text);
}

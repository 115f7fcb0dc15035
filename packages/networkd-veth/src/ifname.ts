import { InvalidArgumentError } from '@sd/sys';
import { siphash24 } from './siphash.js';

/**
 * Host-side interface names of container links, as systemd-nspawn makes
 * them: "ve-" (or "vb-" for --network-bridge) + the machine name. A name
 * longer than IFNAMSIZ-1 bytes keeps its first 11 bytes and gets four
 * characters of a keyed hash, so that two long names sharing a prefix still
 * differ; the full name is then set as the link's alternative name.
 */

export const IFNAMSIZ = 16;
/** Alternative names (IFLA_ALT_IFNAME) may be this long including the NUL. */
export const ALTIFNAMSIZ = 128;

// systemd's SHORTEN_IFNAME_HASH_KEY: a fixed key, so names are stable across hosts and runs.
const SHORTEN_KEY = Buffer.from('e190a404a8ef4b518cccc33a9f11fca2', 'hex');
const URLSAFE_BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export interface ShortenedName {
  /** The kernel name, at most IFNAMSIZ-1 bytes. */
  name: string;
  /** The original name, to set as alternative name; absent when nothing was shortened. */
  altName?: string;
}

/** Shortens `ifname` the way nspawn does when it does not fit IFNAMSIZ. */
export function shortenIfname(ifname: string): ShortenedName {
  // Machine names are ASCII (hostname rules), so cutting at a byte count cannot split a character.
  if (!/^[\x21-\x7e]+$/.test(ifname))
    throw new InvalidArgumentError(
      `Invalid interface name: ${JSON.stringify(ifname)} (printable ASCII only)`,
    );
  const bytes = Buffer.from(ifname, 'ascii');
  if (bytes.length < IFNAMSIZ) return { name: ifname };
  const h = siphash24(bytes, SHORTEN_KEY);
  // The low 24 bits of the hash as four url-safe base64 characters.
  const tail = [18n, 12n, 6n, 0n].map((s) => URLSAFE_BASE64[Number((h >> s) & 63n)]).join('');
  const name = `${bytes.subarray(0, IFNAMSIZ - 5).toString('ascii')}${tail}`;
  const result: ShortenedName = { name };
  if (bytes.length < ALTIFNAMSIZ) result.altName = ifname;
  return result;
}

/** A kernel interface name: 1..15 bytes, no '/', ':' or whitespace, not "." or "..". */
export function isValidIfname(name: string): boolean {
  const len = Buffer.byteLength(name);
  if (len === 0 || len >= IFNAMSIZ) return false;
  if (name === '.' || name === '..') return false;
  return !/[/:\s]/.test(name);
}

export interface VethNameOptions {
  /** --network-bridge: "vb-" instead of "ve-". */
  bridge?: boolean;
}

/** The host-side veth name for a machine, shortened as nspawn does. */
export function vethHostName(machineName: string, options: VethNameOptions = {}): ShortenedName {
  if (machineName === '') throw new InvalidArgumentError('A veth name needs a machine name');
  return shortenIfname(`${options.bridge ? 'vb-' : 've-'}${machineName}`);
}

/** The container side of every --network-veth link. */
export const CONTAINER_VETH_NAME = 'host0';

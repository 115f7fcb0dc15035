import { basename } from 'node:path';
import { InvalidArgumentError } from '@sd/sys';
import { withoutRawSuffix } from './image.js';

/**
 * Machine names follow systemd's hostname rules (hostname_is_valid()):
 * letters, digits and hyphens in dot-separated labels, no label starting
 * with a hyphen, no hyphen before a dot, no empty label, at most 64 bytes
 * (HOST_NAME_MAX). ".host" is the name of the host itself.
 */

export const HOST_NAME_MAX = 64;

export interface HostnameRules {
  /** Accept ".host" (the host's own name in machined). */
  dotHost?: boolean;
  /** Accept one trailing dot on a name with at least two dots (an FQDN). */
  trailingDot?: boolean;
}

/** [A-Za-z0-9-], one character. (Not a regex: machine names are checked at every start, and a regex compiles at its first use.) */
const isLdh = (c: string): boolean =>
  c.length === 1 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c === '-');

export function isValidHostname(name: string, rules: HostnameRules = {}): boolean {
  if (name === '') return false;
  if (name === '.host') return rules.dotHost === true;
  let dots = 0;
  // Both start true: a name cannot begin with a dot or a hyphen.
  let dot = true;
  let hyphen = true;
  for (const c of name) {
    if (c === '.') {
      if (dot || hyphen) return false;
      dot = true;
      hyphen = false;
      dots++;
    } else if (c === '-') {
      if (dot) return false;
      dot = false;
      hyphen = true;
    } else {
      if (!isLdh(c)) return false;
      dot = false;
      hyphen = false;
    }
  }
  if (dot && (dots < 2 || !rules.trailingDot)) return false;
  if (hyphen) return false;
  return Buffer.byteLength(name) <= HOST_NAME_MAX;
}

/** A machine name as machined and nspawn accept it (".host" included). */
export function isValidMachineName(name: string): boolean {
  return isValidHostname(name, { dotHost: true });
}

/** Throws an InvalidArgumentError naming the input when `name` is not a valid machine name. */
export function assertValidMachineName(name: unknown): string {
  if (typeof name !== 'string' || !isValidMachineName(name)) {
    throw new InvalidArgumentError(
      `Invalid machine name: ${JSON.stringify(name)} (letters, digits, '-' and '.' only, at most ${HOST_NAME_MAX} bytes, no leading or trailing '-' or '.')`,
    );
  }
  return name;
}

/**
 * Turns arbitrary text (a directory or image file name) into a valid
 * hostname the way systemd's hostname_cleanup() does: drop invalid
 * characters, collapse runs of dots, no hyphen right after a dot, cut at
 * HOST_NAME_MAX. May return "" when nothing valid is left.
 */
export function cleanupHostname(text: string): string {
  let out = '';
  let dot = true;
  let hyphen = true;
  for (const c of text) {
    if (out.length >= HOST_NAME_MAX) break;
    if (c === '.') {
      if (dot || hyphen) continue;
      out += '.';
      dot = true;
      hyphen = false;
    } else if (c === '-') {
      if (dot) continue;
      out += '-';
      dot = false;
      hyphen = true;
    } else if (isLdh(c)) {
      out += c;
      dot = false;
      hyphen = false;
    }
  }
  // A trailing '-' or '.' cannot stay; the loop never leaves two in a row.
  while (out.endsWith('-') || out.endsWith('.')) out = out.slice(0, -1);
  return out;
}

/**
 * The machine name nspawn derives when none is given: the last component
 * of the directory or image path, without a .raw suffix, cleaned up.
 */
export function machineNameFromPath(path: string): string {
  const name = cleanupHostname(withoutRawSuffix(basename(path)));
  if (!name) throw new InvalidArgumentError(`Cannot derive a machine name from ${JSON.stringify(path)}`);
  return name;
}

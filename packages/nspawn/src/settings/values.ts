import { isValidHostname } from '@sd/basic';
import { parseCapabilityList, SdError } from '@sd/sys';
import { NspawnError } from '../errors.js';
import type { PrivateUsers } from './settings.js';

/**
 * Values that the command line and .nspawn files both take, parsed once so
 * that `--opt=v` and `Key=v` cannot drift apart (agree.test.ts holds them to
 * it). Each throws an NspawnError whose message names the value; callers add
 * where it came from.
 */

/** systemd's parse_boolean(): case-insensitive; undefined for anything else. */
export function parseBooleanValue(value: string): boolean | undefined {
  const v = value.toLowerCase();
  if (['1', 'yes', 'y', 'true', 't', 'on'].includes(v)) return true;
  if (['0', 'no', 'n', 'false', 'f', 'off'].includes(v)) return false;
  return undefined;
}

const RANGE = 0x10000;

/** --private-users= / PrivateUsers=: a boolean, pick, identity, or UID[:RANGE] fitting in 32 bits. */
export function parsePrivateUsersValue(value: string): PrivateUsers {
  const b = parseBooleanValue(value);
  if (b !== undefined) return { mode: b ? 'pick' : 'no', range: RANGE };
  if (value === 'pick') return { mode: 'pick', range: RANGE };
  if (value === 'identity') return { mode: 'identity', range: RANGE };
  const m = /^(\d+)(?::(\d+))?$/.exec(value);
  if (!m) throw new NspawnError('EINVAL', `${value} is not a boolean, pick, identity or UID[:RANGE]`);
  const shift = Number(m[1]);
  const range = m[2] === undefined ? RANGE : Number(m[2]);
  if (range < 1) throw new NspawnError('EINVAL', `UID range ${value} is empty`);
  if (shift + range > 0xfffffffe)
    throw new NspawnError('EINVAL', `UID range ${value} does not fit in 32 bits`);
  return { mode: 'fixed', shift, range };
}

const ID128 = /^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/** --uuid= / MachineID=: 32 hex digits, plain or in the dashed UUID form, not all zeroes. */
export function parseMachineId(value: string): string {
  if (!ID128.test(value)) throw new NspawnError('EINVAL', `Invalid UUID: ${value}`);
  const id = value.replaceAll('-', '').toLowerCase();
  if (/^0+$/.test(id)) throw new NspawnError('EINVAL', 'Machine UUID may not be all zeroes.');
  return id;
}

/** --hostname= / Hostname=: empty unsets it; otherwise a valid host name (hostname_is_valid()). */
export function parseHostnameValue(value: string): string | undefined {
  if (value === '') return undefined;
  if (!isValidHostname(value)) throw new NspawnError('EINVAL', `Invalid hostname: ${value}`);
  return value;
}

/** Capability names of --capability= / Capability= (and the drop forms), checked now rather than at start. */
export function parseCapabilityNames(value: string): string[] {
  const names = value.split(/[\s,]+/).filter(Boolean);
  if (names.length === 0) return [];
  try {
    parseCapabilityList(names.join(','));
  } catch (e) {
    if (e instanceof SdError) throw new NspawnError('EINVAL', e.message);
    throw e;
  }
  return names;
}

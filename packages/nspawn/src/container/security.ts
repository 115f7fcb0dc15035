import { containerSeccompFilter, lastCap, NSPAWN_DEFAULT_CAPABILITIES, parseCapabilityList } from '@sd/sys';
import { NspawnError } from '../errors.js';
import type { Settings } from '../settings/settings.js';

/** The capability bounding set the payload keeps: systemd-nspawn's default, plus --capability, minus --drop-capability. */
export function capabilityMask(settings: Settings): bigint {
  let mask = NSPAWN_DEFAULT_CAPABILITIES;
  try {
    for (const c of settings.capabilities) if (c) mask |= parseCapabilityList(c);
    for (const c of settings.dropCapabilities) if (c) mask &= ~parseCapabilityList(c);
  } catch (e) {
    throw new NspawnError('EINVAL', (e as Error).message, { cause: e });
  }
  return mask;
}

export function lastCapability(): number {
  return lastCap();
}

/**
 * The container's seccomp filter: systemd-nspawn's allow-list for the
 * capabilities the payload keeps, with --system-call-filter applied
 * (containerSeccompFilter in @sd/sys, which builds each distinct filter once).
 */
export function defaultSeccompFilter(settings: Settings): Buffer {
  try {
    return containerSeccompFilter({
      capabilities: capabilityMask(settings),
      systemCallFilter: settings.systemCallFilter,
    });
  } catch (e) {
    if (e instanceof NspawnError) throw e;
    throw new NspawnError('EINVAL', `Invalid --system-call-filter: ${(e as Error).message}`, { cause: e });
  }
}

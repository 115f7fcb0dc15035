import {
  containerSeccompFilter,
  lastCap,
  NSPAWN_DEFAULT_CAPABILITIES,
  parseCapabilityList,
  SdError,
} from '@sd/sys';
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
 * The payload's filter, with --system-call-filter applied: @sd/sys's
 * containerSeccompFilter (the same one sd-machined gives a process that
 * enters the container), built once per distinct setting and reused.
 */
export function defaultSeccompFilter(settings: Settings): Buffer {
  try {
    return containerSeccompFilter({
      capabilities: capabilityMask(settings),
      systemCallFilter: settings.systemCallFilter,
    });
  } catch (e) {
    if (e instanceof SdError) throw new NspawnError(e.code, e.message, { cause: e });
    throw e;
  }
}

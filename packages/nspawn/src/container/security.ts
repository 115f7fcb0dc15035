import { statSync } from 'node:fs';
import {
  CAP,
  containerSeccompFilter,
  type DeviceRule,
  lastCap,
  NSPAWN_DEFAULT_CAPABILITIES,
  NSPAWN_DEVICE_ALLOW,
  parseCapabilityList,
} from '@sd/sys';
import { NspawnError } from '../errors.js';
import { hasPrivateNetwork } from '../settings/network.js';
import type { Settings } from '../settings/settings.js';

/** The capability bounding set the payload keeps: systemd-nspawn's default, plus --capability, minus --drop-capability. */
export function capabilityMask(settings: Settings): bigint {
  let mask = NSPAWN_DEFAULT_CAPABILITIES;
  try {
    for (const c of settings.capabilities) if (c) mask |= parseCapabilityList(c);
    // A network of its own is the container's to manage, as with systemd-nspawn: CAP_NET_ADMIN stays
    // (before --drop-capability, which can still take it away).
    if (hasPrivateNetwork(settings)) mask |= 1n << BigInt(CAP.NET_ADMIN);
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

/**
 * The devices the machine's cgroup allows: systemd-nspawn's list, plus each
 * device node bound in with --bind (rw) or --bind-ro (r), as systemd-nspawn
 * adds DeviceAllow= for them. A source that is not there yet is skipped.
 */
export function deviceRules(settings: Settings): DeviceRule[] {
  const rules = [...NSPAWN_DEVICE_ALLOW];
  for (const b of settings.binds) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(b.source, { bigint: true });
    } catch {
      continue;
    }
    if (!st.isCharacterDevice() && !st.isBlockDevice()) continue;
    const rdev = st.rdev;
    const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
    const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    rules.push({ type: st.isBlockDevice() ? 'b' : 'c', major, minor, access: b.readOnly ? 'r' : 'rw' });
  }
  return rules;
}

import {
  buildFilter,
  findSyscallNumber,
  lastCap,
  NSPAWN_DEFAULT_CAPABILITIES,
  parseCapabilityList,
  SECCOMP_RET,
} from '@sd/sys';
import { NspawnError } from '../errors.js';
import { hasPrivateNetwork } from '../settings/network.js';
import type { Settings } from '../settings/settings.js';

const CAP_NET_ADMIN = 1n << 12n;

/** The capability bounding set the payload keeps: systemd-nspawn's default, plus --capability, minus --drop-capability. */
export function capabilityMask(settings: Settings): bigint {
  let mask = NSPAWN_DEFAULT_CAPABILITIES;
  try {
    for (const c of settings.capabilities) if (c) mask |= parseCapabilityList(c);
    // A network of its own is the container's to manage, as with systemd-nspawn: CAP_NET_ADMIN stays
    // (before --drop-capability, which can still take it away).
    if (hasPrivateNetwork(settings)) mask |= CAP_NET_ADMIN;
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
 * Calls no container may make, whatever its capabilities: loading kernel
 * code or replacing the kernel, swap, raw port I/O, file handles that reach
 * past the container's root, the kernel keyring (not namespaced), BPF and
 * perf (host-wide), process accounting. They fail with EPERM.
 */
export const DENIED_SYSCALLS = [
  'kexec_load',
  'kexec_file_load',
  'init_module',
  'finit_module',
  'delete_module',
  'swapon',
  'swapoff',
  'open_by_handle_at',
  'iopl',
  'ioperm',
  'acct',
  'keyctl',
  'add_key',
  'request_key',
  'bpf',
  'perf_event_open',
  'lookup_dcookie',
  'uselib',
  'nfsservctl',
  'quotactl',
  'syslog',
];

const EPERM = 1;
const ENOSYS = 38;

/**
 * The default filter, with --system-call-filter applied: `name` allows a
 * call we deny by default, `~name` denies one more. The filter is a constant
 * for the default settings; it is built once per process and reused.
 */
export function defaultSeccompFilter(settings: Settings): Buffer {
  const denied = new Set(DENIED_SYSCALLS);
  for (const word of settings.systemCallFilter) {
    const deny = word.startsWith('~');
    const name = deny ? word.slice(1) : word;
    if (name.startsWith('@'))
      throw new NspawnError(
        'EOPNOTSUPP',
        `System call groups such as ${name} are not supported yet in --system-call-filter`,
      );
    if (findSyscallNumber(name) === undefined && !DENIED_SYSCALLS.includes(name))
      throw new NspawnError('EINVAL', `Unknown system call in --system-call-filter: ${name}`);
    if (deny) denied.add(name);
    else denied.delete(name);
  }
  const key = [...denied].sort().join(',');
  let filter = cache.get(key);
  if (!filter) {
    filter = buildFilter({
      defaultAction: SECCOMP_RET.ALLOW,
      badArchAction: SECCOMP_RET.ERRNO | ENOSYS,
      rules: [...denied].map((syscall) => ({ syscall, action: SECCOMP_RET.ERRNO | EPERM })),
    });
    cache.set(key, filter);
  }
  return filter;
}

const cache = new Map<string, Buffer>();

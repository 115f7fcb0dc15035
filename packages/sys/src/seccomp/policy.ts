import { SdError } from '../errors.js';
import { buildFilter, SECCOMP_RET } from './filter.js';
import { findSyscallNumber } from './syscalls.js';

/**
 * The seccomp filter of a container's payload, and of every process that
 * enters a running container (sd-machined applies it with the leader's
 * bounding set). One function, so that both get the same filter.
 *
 * This version keeps the deny list sd-nspawn had; `capabilities` is part of
 * the signature for a policy that depends on them. `systemCallFilter` is
 * --system-call-filter: `name` allows a call denied by default, `~name`
 * denies one more. A filter is built once per distinct key and reused.
 */

/**
 * Calls no container may make, whatever its capabilities: loading kernel
 * code or replacing the kernel, swap, raw port I/O, file handles that reach
 * past the container's root, the kernel keyring (not namespaced), BPF and
 * perf (host-wide), process accounting. They fail with EPERM.
 */
export const DENIED_SYSCALLS: readonly string[] = [
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
const cache = new Map<string, Buffer>();

export function containerSeccompFilter(o: {
  capabilities: bigint;
  systemCallFilter?: readonly string[];
}): Buffer {
  const denied = new Set(DENIED_SYSCALLS);
  for (const word of o.systemCallFilter ?? []) {
    const deny = word.startsWith('~');
    const name = deny ? word.slice(1) : word;
    if (name.startsWith('@'))
      throw new SdError(
        'EOPNOTSUPP',
        `System call groups such as ${name} are not supported yet in --system-call-filter`,
      );
    if (findSyscallNumber(name) === undefined && !DENIED_SYSCALLS.includes(name))
      throw new SdError('EINVAL', `Unknown system call in --system-call-filter: ${name}`);
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

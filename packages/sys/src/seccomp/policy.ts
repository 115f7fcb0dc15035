import { type Arch, hostArch } from '../arch/index.js';
import { capabilityFromName } from '../caps/names.js';
import { InvalidArgumentError } from '../errors.js';
import { prebuiltSeccompFilter, seccompKey } from '../prebuilt/prebuilt.js';
import { buildTableFilter, SECCOMP_RET } from './filter.js';
import { expandSyscallGroup, groupedSyscallNames, isSyscallGroup } from './groups.js';
import { findSyscallNumber, syscallNames } from './syscalls.js';

/**
 * The seccomp policy of a container: systemd-nspawn's allow-list
 * (src/nspawn/nspawn-seccomp.c), by group where it can, plus calls allowed
 * only when the container keeps the capability that makes them useful.
 * Every other call the kernel tables know fails with EPERM; numbers newer
 * than the tables fail with ENOSYS, so that libc falls back to older calls.
 */
export const NSPAWN_SYSCALL_ALLOW_LIST: ReadonlyArray<{ name: string; capability?: string }> = [
  ...[
    '@aio',
    '@basic-io',
    '@chown',
    '@default',
    '@file-system',
    '@io-event',
    '@ipc',
    '@mount',
    '@network-io',
    '@process',
    '@resources',
    '@setuid',
    '@signal',
    '@sync',
    '@timer',
  ].map((name) => ({ name })),
  { name: '@clock', capability: 'CAP_SYS_TIME' },
  { name: '@module', capability: 'CAP_SYS_MODULE' },
  { name: '@raw-io', capability: 'CAP_SYS_RAWIO' },
  { name: '@memlock', capability: 'CAP_IPC_LOCK' },
  ...`brk capget capset copy_file_range fadvise64 fadvise64_64 flock get_mempolicy getcpu getpriority
    getrandom ioctl ioprio_get kcmp madvise mincore mprotect mremap name_to_handle_at oldolduname
    olduname personality readahead readdir remap_file_pages sched_get_priority_max
    sched_get_priority_min sched_getaffinity sched_getattr sched_getparam sched_getscheduler
    sched_rr_get_interval sched_rr_get_interval_time64 sched_yield sendfile sendfile64 setdomainname
    setfsgid setfsgid32 setfsuid setfsuid32 sethostname setpgid setsid splice sysinfo tee umask uname
    userfaultfd vmsplice`
    // Not split(/\s+/): this runs at every start, and a regex compiles at its first use.
    .replaceAll('\n', ' ')
    .split(' ')
    .filter(Boolean)
    .map((name) => ({ name })),
  { name: 'acct', capability: 'CAP_SYS_PACCT' },
  { name: 'process_vm_readv', capability: 'CAP_SYS_PTRACE' },
  { name: 'process_vm_writev', capability: 'CAP_SYS_PTRACE' },
  { name: 'ptrace', capability: 'CAP_SYS_PTRACE' },
  { name: 'reboot', capability: 'CAP_SYS_BOOT' },
  { name: 'syslog', capability: 'CAP_SYSLOG' },
  { name: 'vhangup', capability: 'CAP_SYS_TTY_CONFIG' },
];

/**
 * Calls systemd-nspawn allows that we do not, unless a filter names them:
 * io_uring runs the operations it is given in kernel workers, out of reach
 * of the seccomp filter; userfaultfd turns kernel races into reliable
 * exploits. (systemd leaves out, as we do, fanotify_*, open_by_handle_at,
 * bpf, perf_event_open, the keyring, kexec, swap, quotactl and the rest.)
 */
export const NSPAWN_SYSCALL_WITHHELD: readonly string[] = [
  'io_uring_enter',
  'io_uring_register',
  'io_uring_setup',
  'userfaultfd',
];

/**
 * Calls newer than systemd's list of known calls (its @known): a denied one
 * fails with ENOSYS, as a kernel without it would, so that libc and programs
 * fall back to the older calls instead of giving up on EPERM.
 */
export const SYSCALLS_NEWER_THAN_KNOWN: readonly string[] = [
  'statmount',
  'listmount',
  'lsm_get_self_attr',
  'lsm_set_self_attr',
  'lsm_list_modules',
  'mseal',
  'setxattrat',
  'getxattrat',
  'listxattrat',
  'removexattrat',
  'open_tree_attr',
];

export interface ContainerSeccompOptions {
  /** The bounding set the payload keeps (a mask of 1 << CAP_*). */
  capabilities: bigint;
  /**
   * SystemCallFilter= words: a call or `@group` to allow as well, or with a
   * leading `~` to deny (denials win, as in systemd-nspawn).
   */
  systemCallFilter?: readonly string[];
}

/** The names of the calls the container may make on `arch` (the rest fail). */
export function containerAllowedSyscalls(o: ContainerSeccompOptions, arch: Arch = hostArch()): Set<string> {
  const allowed = new Set<string>();
  for (const item of NSPAWN_SYSCALL_ALLOW_LIST) {
    if (item.capability !== undefined) {
      const cap = capabilityFromName(item.capability);
      if (cap === undefined || !((o.capabilities >> BigInt(cap)) & 1n)) continue;
    }
    for (const n of expandItem(item.name, arch)) allowed.add(n);
  }
  for (const n of NSPAWN_SYSCALL_WITHHELD) allowed.delete(n);
  const denied = new Set<string>();
  for (const word of o.systemCallFilter ?? []) {
    const deny = word.startsWith('~');
    const names = expandItem(deny ? word.slice(1) : word, arch);
    for (const n of names) (deny ? denied : allowed).add(n);
  }
  for (const n of denied) allowed.delete(n);
  return allowed;
}

const cache = new Map<string, Buffer>();

/**
 * The container's seccomp program (a sock_filter array for `arch`, the
 * host's by default): prebuilt for systemd-nspawn's usual inputs
 * (prebuilt/), else built once per distinct capabilities and filter and
 * then reused. Throws InvalidArgumentError naming an unknown call or group.
 */
export function containerSeccompFilter(
  o: { capabilities: bigint; systemCallFilter?: readonly string[] },
  arch: Arch = hostArch(),
): Buffer {
  const key = seccompKey(arch, o);
  let filter = cache.get(key);
  if (!filter) {
    filter = prebuiltSeccompFilter(arch, o) ?? buildContainerSeccompFilter(o, arch);
    cache.set(key, filter);
  }
  return filter;
}

/** containerSeccompFilter without the prebuilt programs or the cache (tests, tools/build/gen-prebuilt.ts). */
export function buildContainerSeccompFilter(
  o: { capabilities: bigint; systemCallFilter?: readonly string[] },
  arch: Arch,
): Buffer {
  const allowed = containerAllowedSyscalls(o, arch);
  const actions = new Map<number, number>();
  const newer = new Set(SYSCALLS_NEWER_THAN_KNOWN);
  for (const name of syscallNames(arch)) {
    const nr = findSyscallNumber(name, arch)!;
    const denied = (SECCOMP_RET.ERRNO | (newer.has(name) ? ENOSYS : EPERM)) >>> 0;
    actions.set(nr, allowed.has(name) ? SECCOMP_RET.ALLOW : denied);
  }
  return buildTableFilter({
    arch,
    actions,
    defaultAction: (SECCOMP_RET.ERRNO | ENOSYS) >>> 0,
    // i386 and x32 calls: the container has no business with them.
    badArchAction: (SECCOMP_RET.ERRNO | ENOSYS) >>> 0,
    // Audit is not namespaced: socket(AF_NETLINK, *, NETLINK_AUDIT) fails with
    // EAFNOSUPPORT, which audit userspace takes for "no audit in this kernel" (as systemd-nspawn).
    argumentRules: allowed.has('socket')
      ? [
          {
            nr: findSyscallNumber('socket', arch)!,
            args: [
              { index: 0, value: AF_NETLINK },
              { index: 2, value: NETLINK_AUDIT },
            ],
            action: (SECCOMP_RET.ERRNO | EAFNOSUPPORT) >>> 0,
          },
        ]
      : [],
  });
}

const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;
const AF_NETLINK = 16n;
const NETLINK_AUDIT = 9n;

/** The calls of `arch` a filter word names: a call, a group, or `@known`. */
function expandItem(word: string, arch: Arch): string[] {
  if (word === '') throw new InvalidArgumentError('empty word in a system call filter');
  if (word.startsWith('@')) {
    if (!isSyscallGroup(word))
      throw new InvalidArgumentError(`unknown system call group '${word}' in a system call filter`);
    if (word === '@known') return syscallNames(arch);
    return expandSyscallGroup(word).filter((n) => findSyscallNumber(n, arch) !== undefined);
  }
  if (findSyscallNumber(word, arch) !== undefined) return [word];
  // A call of another architecture (open on aarch64, mmap2 on 32-bit ones): nothing to do here.
  if (findSyscallNumber(word, arch === 'x86_64' ? 'aarch64' : 'x86_64') !== undefined) return [];
  if (knownElsewhere().has(word)) return [];
  throw new InvalidArgumentError(`unknown system call '${word}' in a system call filter`);
}

let grouped: Set<string> | undefined;
function knownElsewhere(): Set<string> {
  grouped ??= groupedSyscallNames();
  return grouped;
}

/**
 * One --system-call-filter= / SystemCallFilter= value as filter words: a
 * space-separated list, all of it denied when it starts with `~` (systemd's
 * syntax: `~@mount kill` denies both). Throws naming an unknown call or group.
 */
export function parseSystemCallFilter(value: string): string[] {
  const deny = value.trimStart().startsWith('~');
  const words = (deny ? value.trimStart().slice(1) : value).split(/\s+/).filter(Boolean);
  for (const w of words) {
    if (w.startsWith('~'))
      throw new InvalidArgumentError(
        `'~' may only start a system call filter list, not '${w}' in '${value}'`,
      );
    expandItem(w, hostArch());
  }
  return deny ? words.map((w) => `~${w}`) : words;
}

import { isDigits } from '../digits.js';
import { InvalidArgumentError } from '../errors.js';

/**
 * Capability names as systemd spells them (lower-case input is accepted), indexed by number
 * (include/uapi/linux/capability.h).
 */
export const CAPABILITY_NAMES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
] as const;

export type CapabilityName = (typeof CAPABILITY_NAMES)[number];

/** The highest capability number this table knows. */
export const CAP_LAST_KNOWN = CAPABILITY_NAMES.length - 1;

/** Capability numbers by name: `CAP.SYS_ADMIN === 21`. */
export const CAP = Object.fromEntries(CAPABILITY_NAMES.map((n, i) => [n.slice(4), i])) as {
  readonly [K in CapabilityName as K extends `CAP_${infer R}` ? R : never]: number;
};

/** Built at first use, not at every start. */
let byName: Map<string, number> | undefined;

/** `CAP_SYS_ADMIN` for 21; a number the table does not know comes back as its decimal string, like systemd. */
export function capabilityName(cap: number): string {
  return CAPABILITY_NAMES[cap] ?? String(cap);
}

/**
 * The number of a capability name (`CAP_SYS_ADMIN`, `cap_sys_admin`) or of a
 * decimal number up to 63; undefined when it is neither.
 */
export function capabilityFromName(name: string): number | undefined {
  byName ??= new Map(CAPABILITY_NAMES.map((n, i) => [n, i]));
  const known = byName.get(name.toUpperCase());
  if (known !== undefined) return known;
  if (isDigits(name)) {
    const n = Number(name);
    if (n <= 63) return n;
  }
  return undefined;
}

/** A mask with one bit per capability. */
export function capabilityMask(caps: Iterable<number>): bigint {
  let m = 0n;
  for (const c of caps) m |= 1n << BigInt(c);
  return m;
}

/** Every capability this table knows, as a mask. */
export const ALL_CAPABILITIES = (1n << BigInt(CAPABILITY_NAMES.length)) - 1n;

/**
 * Parses a capability list as systemd's --capability= takes it: names (or
 * numbers) separated by commas or whitespace, or `all`. Throws naming the
 * entry it does not know.
 */
export function parseCapabilityList(list: string): bigint {
  const words = list.split(/[\s,]+/).filter(Boolean);
  if (words.length === 0) throw new InvalidArgumentError('capability list is empty');
  let mask = 0n;
  for (const w of words) {
    if (w.toLowerCase() === 'all') {
      mask |= ALL_CAPABILITIES;
      continue;
    }
    const cap = capabilityFromName(w);
    if (cap === undefined)
      throw new InvalidArgumentError(`unknown capability '${w}' in capability list '${list}'`);
    mask |= 1n << BigInt(cap);
  }
  return mask;
}

/** The names of the capabilities in `mask`, in number order. */
export function capabilityList(mask: bigint): string[] {
  const out: string[] = [];
  for (let i = 0; i < 64; i++) if ((mask >> BigInt(i)) & 1n) out.push(capabilityName(i));
  return out;
}

/**
 * The bounding set systemd-nspawn keeps for a container by default
 * (arg_caps_retain in src/nspawn/nspawn.c): everything a booted OS needs
 * inside, without module loading, raw I/O, time, network administration
 * (without a private network), MAC or BPF.
 */
export const NSPAWN_DEFAULT_CAPABILITIES: bigint = capabilityMask(
  (
    [
      'AUDIT_CONTROL',
      'AUDIT_WRITE',
      'CHOWN',
      'DAC_OVERRIDE',
      'DAC_READ_SEARCH',
      'FOWNER',
      'FSETID',
      'IPC_OWNER',
      'KILL',
      'LEASE',
      'LINUX_IMMUTABLE',
      'MKNOD',
      'NET_BIND_SERVICE',
      'NET_BROADCAST',
      'NET_RAW',
      'SETFCAP',
      'SETGID',
      'SETPCAP',
      'SETUID',
      'SYS_ADMIN',
      'SYS_BOOT',
      'SYS_CHROOT',
      'SYS_NICE',
      'SYS_PTRACE',
      'SYS_RESOURCE',
      'SYS_TTY_CONFIG',
    ] as const
  ).map((n) => CAP[n]),
);

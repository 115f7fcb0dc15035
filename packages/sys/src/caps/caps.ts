import { readFileSync } from 'node:fs';
import { SYS } from '../arch/index.js';
import { PR } from '../constants.js';
import { InvalidArgumentError, SyscallError } from '../errors.js';
import { check, koffi, lazyFunc } from '../ffi/libc.js';
import { Data, type SpawnProgram } from '../spawn/program.js';
import { CAP_LAST_KNOWN } from './names.js';

export * from './names.js';

/** _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set. */
const CAP_VERSION_3 = 0x20080522;

/** The three capability sets of a thread, as bit masks. */
export interface CapabilitySets {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
}

const c = {
  capget: lazyFunc('syscall', 'long', ['long', 'uint8_t *', '_Out_ uint8_t *']),
  capset: lazyFunc('syscall', 'long', ['long', 'uint8_t *', 'uint8_t *']),
  prctl: lazyFunc(
    'int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)',
  ),
};

function header(pid: number): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(CAP_VERSION_3, 0);
  h.writeInt32LE(pid, 4);
  return h;
}

/** struct __user_cap_data_struct[2]: {effective, permitted, inheritable} for bits 0-31, then 32-63. */
export function encodeCapData(sets: CapabilitySets): Buffer {
  const d = Buffer.alloc(24);
  const parts = [sets.effective, sets.permitted, sets.inheritable];
  parts.forEach((mask, i) => {
    if (mask < 0n || mask >= 1n << 64n)
      throw new InvalidArgumentError(`capability mask out of range: ${mask}`);
    d.writeUInt32LE(Number(mask & 0xffffffffn), i * 4);
    d.writeUInt32LE(Number(mask >> 32n), 12 + i * 4);
  });
  return d;
}

export function decodeCapData(d: Buffer): CapabilitySets {
  const word = (i: number) => BigInt(d.readUInt32LE(i * 4)) | (BigInt(d.readUInt32LE(12 + i * 4)) << 32n);
  return { effective: word(0), permitted: word(1), inheritable: word(2) };
}

/** The capability sets of a process (0: the calling thread). */
export function capget(pid = 0): CapabilitySets {
  const data = Buffer.alloc(24);
  if (Number(c.capget(SYS.capget, header(pid), data)) < 0)
    throw new SyscallError('capget', koffi.errno(), pid ? `pid ${pid}` : undefined);
  return decodeCapData(data);
}

/**
 * Sets the capability sets of the calling thread only. Node runs JS on its
 * main thread, so this changes that thread and not the pool threads; use
 * setCapabilities() on a SpawnProgram to set them for a new process.
 */
export function capset(sets: CapabilitySets): void {
  if (Number(c.capset(SYS.capset, header(0), encodeCapData(sets))) < 0)
    throw new SyscallError('capset', koffi.errno());
}

let lastCapCache: number | undefined;

/** The highest capability the running kernel knows (/proc/sys/kernel/cap_last_cap). */
export function lastCap(): number {
  if (lastCapCache !== undefined) return lastCapCache;
  try {
    const n = Number.parseInt(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'), 10);
    lastCapCache = Number.isInteger(n) && n >= 0 && n < 64 ? n : CAP_LAST_KNOWN;
  } catch {
    // /proc not mounted: probe with PR_CAPBSET_READ, which fails with EINVAL past the last one.
    let n = 0;
    while (n < 63 && c.prctl(PR.CAPBSET_READ, n + 1, 0, 0, 0) >= 0) n++;
    lastCapCache = n;
  }
  return lastCapCache;
}

/** The calling thread's capability bounding set, read with PR_CAPBSET_READ. */
export function boundingSet(): bigint {
  let mask = 0n;
  const last = lastCap();
  for (let cap = 0; cap <= last; cap++) {
    if (check('prctl(PR_CAPBSET_READ)', c.prctl(PR.CAPBSET_READ, cap, 0, 0, 0)) === 1)
      mask |= 1n << BigInt(cap);
  }
  return mask;
}

// SpawnProgram steps. They take the program rather than living in program.ts
// so that spawn stays independent of what a capability is.

/**
 * Drops every capability not in `keep` from the bounding set (PR_CAPBSET_DROP
 * needs CAP_SETPCAP, so put it before dropping that). Caps up to the
 * kernel's cap_last_cap must drop; the ones this table knows past it are
 * attempted with errors ignored (EINVAL: the kernel lacks them), so a plan
 * built on one kernel stays right on a newer one.
 */
export function dropBoundingSet(
  program: SpawnProgram,
  keep: bigint,
  kernelLastCap = lastCap(),
): SpawnProgram {
  const last = Math.max(kernelLastCap, CAP_LAST_KNOWN);
  for (let cap = 0; cap <= last; cap++) {
    if ((keep >> BigInt(cap)) & 1n) continue;
    program.prctl(PR.CAPBSET_DROP, cap, 0, 0, 0, cap > kernelLastCap ? { ignoreErrno: true } : undefined);
  }
  return program;
}

/** capset(2) of the three sets in the child, with header and data marshalled into the program. */
export function setCapabilities(program: SpawnProgram, sets: CapabilitySets): SpawnProgram {
  program.syscall('capset', program.sys.capset, [
    new Data(header(0), 'cap_user_header'),
    new Data(
      encodeCapData(sets),
      `caps e=${hex(sets.effective)} p=${hex(sets.permitted)} i=${hex(sets.inheritable)}`,
    ),
  ]);
  return program;
}

/** PR_SET_NO_NEW_PRIVS: execve can no longer grant privileges (setuid bits, file caps). */
export function setNoNewPrivileges(program: SpawnProgram): SpawnProgram {
  program.prctl(PR.SET_NO_NEW_PRIVS, 1);
  return program;
}

/**
 * Clears the ambient set. Kernels without ambient capabilities (< 4.3)
 * answer EINVAL, which is fine: there is nothing to clear then.
 */
export function clearAmbientCapabilities(program: SpawnProgram): SpawnProgram {
  program.prctl(PR.CAP_AMBIENT, PR.CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, { ignoreErrno: true });
  return program;
}

/**
 * Raises the caps in `mask` in the ambient set, so that they survive execve
 * of a non-root payload. Each must be permitted and inheritable already
 * (setCapabilities first).
 */
export function raiseAmbientCapabilities(program: SpawnProgram, mask: bigint): SpawnProgram {
  for (let cap = 0; cap < 64; cap++)
    if ((mask >> BigInt(cap)) & 1n) program.prctl(PR.CAP_AMBIENT, PR.CAP_AMBIENT_RAISE, cap);
  return program;
}

function hex(m: bigint): string {
  return `0x${m.toString(16)}`;
}

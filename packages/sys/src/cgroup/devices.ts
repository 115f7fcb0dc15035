// A cgroup's device policy: which device nodes its processes may open or create.

import { SYS } from '../arch/index.js';
import { O } from '../constants.js';
import { InvalidArgumentError, SdError, SyscallError } from '../errors.js';
import { closeQuietly, open } from '../fd/fd.js';
import { addressOf, koffi, lazyFunc } from '../ffi/libc.js';
import { prebuiltDeviceProgram } from '../prebuilt/prebuilt.js';
import { writeEach, writeText } from './fs.js';

/** One allowed device or range: `c 136:* rw` is every minor of major 136, read and write, no mknod. */
export interface DeviceRule {
  type: 'c' | 'b';
  major: number;
  /** Undefined: every minor. */
  minor?: number;
  /** A subset of 'rwm' (read, write, mknod). */
  access: string;
}

/**
 * systemd's DevicePolicy=closed (the null, zero, full, random, urandom, tty
 * and ptmx nodes, the inaccessible 0:0 nodes, the pts ptys without mknod)
 * plus what systemd-nspawn asks for its machines: /dev/net/tun, and the pts
 * ptys (/dev/console and /dev/pts/* are pts devices). Everything else — a
 * host disk or loop device made with mknod — can be neither opened nor made.
 */
export const NSPAWN_DEVICE_ALLOW: readonly DeviceRule[] = [
  ...[3, 5, 7, 8, 9].map((minor) => ({ type: 'c' as const, major: 1, minor, access: 'rwm' })),
  { type: 'c', major: 5, minor: 0, access: 'rwm' }, // /dev/tty
  { type: 'c', major: 5, minor: 2, access: 'rwm' }, // /dev/ptmx
  { type: 'c', major: 0, minor: 0, access: 'rw' }, // inaccessible nodes
  { type: 'b', major: 0, minor: 0, access: 'rw' },
  { type: 'c', major: 10, minor: 200, access: 'rwm' }, // /dev/net/tun
  // pts: UNIX98_PTY_SLAVE_MAJOR and the 7 majors after it.
  ...[136, 137, 138, 139, 140, 141, 142, 143].map((major) => ({ type: 'c' as const, major, access: 'rw' })),
];

function checkRule(r: DeviceRule): void {
  const num = (n: number) => Number.isInteger(n) && n >= 0 && n < 2 ** 32;
  if ((r.type !== 'c' && r.type !== 'b') || !num(r.major) || (r.minor !== undefined && !num(r.minor)))
    throw new InvalidArgumentError(`invalid device rule ${JSON.stringify(r)}`);
  if (r.access === '' || [...r.access].some((c) => c !== 'r' && c !== 'w' && c !== 'm'))
    throw new InvalidArgumentError(`device access '${r.access}' is not a subset of 'rwm'`);
}

/** The devices.allow lines of cgroup v1 for `rules` ("c 1:3 rwm", "c 136:* rw"). */
export function deviceAllowLines(rules: readonly DeviceRule[]): string[] {
  return rules.map((r) => {
    checkRule(r);
    return `${r.type} ${r.major}:${r.minor ?? '*'} ${r.access}`;
  });
}

/**
 * cgroup v1: closes the devices controller of `dir` (deny all) and opens the
 * rules. Children made afterwards inherit the list and cannot widen it.
 */
export function applyDevicePolicyV1(dir: string, rules: readonly DeviceRule[]): void {
  const lines = deviceAllowLines(rules);
  writeText(`${dir}/devices.deny`, 'a');
  writeEach(`${dir}/devices.allow`, lines);
}

// eBPF (linux/bpf.h), just what a device program needs.
const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
const BPF_CGROUP_DEVICE = 6;
const BPF_PROG_LOAD = 5;
const BPF_PROG_ATTACH = 8;
/** Descendants may add programs of their own; every program must allow an access. */
export const BPF_F_ALLOW_MULTI = 2;
const DEVCG_DEV_BLOCK = 1;
const DEVCG_DEV_CHAR = 2;
const ACC = { m: 1, r: 2, w: 4 } as const;

/** One struct bpf_insn: code, dst and src registers, 16-bit offset, 32-bit immediate. */
function insn(code: number, dst: number, src: number, off: number, imm: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(code, 0);
  b.writeUInt8((src << 4) | dst, 1);
  b.writeInt16LE(off, 2);
  b.writeInt32LE(imm | 0, 4);
  return b;
}
const LDX_W = 0x61; // dst = *(u32 *)(src + off)
const AND64_K = 0x57;
const RSH64_K = 0x77;
const MOV64_X = 0xbf;
const MOV64_K = 0xb7;
const JNE_K = 0x55; // if dst != imm: pc += off
const EXIT = 0x95;

/**
 * A BPF_PROG_TYPE_CGROUP_DEVICE program that allows `rules` and nothing
 * else. The context is struct bpf_cgroup_dev_ctx { u32 access_type (access
 * << 16 | type); u32 major; u32 minor; }. Per rule: type, no access outside
 * the rule's, major, minor; a match returns 1; falling off the list returns 0.
 */
export function buildDeviceProgram(rules: readonly DeviceRule[]): Buffer {
  return prebuiltDeviceProgram(rules) ?? compileDeviceProgram(rules);
}

/** buildDeviceProgram without the prebuilt programs (prebuilt/; tests, tools/build/gen-prebuilt.ts). */
export function compileDeviceProgram(rules: readonly DeviceRule[]): Buffer {
  const out: Buffer[] = [
    insn(LDX_W, 2, 1, 0, 0),
    insn(AND64_K, 2, 0, 0, 0xffff), // r2 = type
    insn(LDX_W, 3, 1, 0, 0),
    insn(RSH64_K, 3, 0, 0, 16), // r3 = access
    insn(LDX_W, 4, 1, 4, 0), // r4 = major
    insn(LDX_W, 5, 1, 8, 0), // r5 = minor
  ];
  for (const r of rules) {
    checkRule(r);
    let mask = 0;
    for (const c of r.access) mask |= ACC[c as keyof typeof ACC];
    // Compares that skip to the next rule when they fail; then allow.
    const tests: Array<[number, number, number]> = [
      [JNE_K, 2, r.type === 'c' ? DEVCG_DEV_CHAR : DEVCG_DEV_BLOCK],
    ];
    tests.push([JNE_K, 0, -1]); // access outside the rule's: r0 = r3 & ~mask, set just before
    tests.push([JNE_K, 4, r.major]);
    if (r.minor !== undefined) tests.push([JNE_K, 5, r.minor]);
    const total = tests.length + 2 + 2; // compares, the access mask (mov, and), allow (mov, exit)
    const block: Buffer[] = [];
    for (const [code, reg, imm] of tests) {
      if (imm === -1) block.push(insn(MOV64_X, 0, 3, 0, 0), insn(AND64_K, 0, 0, 0, ~mask & 0xffff));
      block.push(insn(code, reg, 0, total - block.length - 1, imm === -1 ? 0 : imm));
    }
    block.push(insn(MOV64_K, 0, 0, 0, 1), insn(EXIT, 0, 0, 0, 0));
    if (block.length !== total) throw new Error('device program block size');
    out.push(...block);
  }
  out.push(insn(MOV64_K, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0));
  return Buffer.concat(out);
}

const c = {
  bpf: lazyFunc('syscall', 'long', ['long', 'int', 'uint8_t *', 'uint']),
};

function bpf(cmd: number, attr: Buffer, what: string, path?: string): number {
  const ret = Number(c.bpf(SYS.bpf, cmd, attr, attr.length));
  if (ret < 0) throw new SyscallError(`bpf(${what})`, koffi.errno(), path);
  return ret;
}

/** Loads a device program; returns its fd (close it once attached). */
export function loadDeviceProgram(program: Buffer, verbose = false): number {
  const license = Buffer.from('GPL\0');
  const log = Buffer.alloc(verbose ? 1 << 16 : 0);
  const attr = Buffer.alloc(128);
  attr.writeUInt32LE(BPF_PROG_TYPE_CGROUP_DEVICE, 0);
  attr.writeUInt32LE(program.length / 8, 4);
  attr.writeBigUInt64LE(addressOf(program), 8);
  attr.writeBigUInt64LE(addressOf(license), 16);
  if (verbose) {
    attr.writeUInt32LE(1, 24); // log_level
    attr.writeUInt32LE(log.length, 28);
    attr.writeBigUInt64LE(addressOf(log), 32);
  }
  attr.write('sd_devices', 48, 'latin1');
  try {
    // The verifier can answer EAGAIN when interrupted (seen under a
    // profiler's signals); libbpf retries it a few times, so do we.
    for (let attempt = 1; ; attempt++) {
      try {
        return bpf(BPF_PROG_LOAD, attr, 'BPF_PROG_LOAD');
      } catch (e) {
        if ((e as SdError).code !== 'EAGAIN' || attempt === 5) throw e;
      }
    }
  } catch (e) {
    // Once more with the verifier's log, to say why.
    if (!verbose && (e as SdError).code === 'EACCES') return loadDeviceProgram(program, true);
    const text = log.toString('utf8').replace(/\0.*$/s, '').trim();
    if (!text) throw e;
    throw new SdError((e as SdError).code, `the device program was refused: ${text}`, { cause: e });
  }
}

/** Attaches a loaded device program to a cgroup2 directory. */
export function attachDeviceProgram(cgroupDir: string, progFd: number, flags = BPF_F_ALLOW_MULTI): void {
  const dirFd = open(cgroupDir, O.RDONLY | O.DIRECTORY);
  try {
    const attr = Buffer.alloc(32);
    attr.writeUInt32LE(dirFd, 0);
    attr.writeUInt32LE(progFd, 4);
    attr.writeUInt32LE(BPF_CGROUP_DEVICE, 8);
    attr.writeUInt32LE(flags, 12);
    bpf(BPF_PROG_ATTACH, attr, 'BPF_PROG_ATTACH', cgroupDir);
  } finally {
    closeQuietly(dirFd);
  }
}

/**
 * cgroup v2: loads a program that allows `rules` only and attaches it to
 * `dir`. The attachment holds the program; removing the cgroup frees it.
 */
export function applyDevicePolicyV2(dir: string, rules: readonly DeviceRule[]): void {
  const fd = loadDeviceProgram(buildDeviceProgram(rules));
  try {
    attachDeviceProgram(dir, fd);
  } finally {
    closeQuietly(fd);
  }
}

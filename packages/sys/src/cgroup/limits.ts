// Resource limit names of cgroup v2 and their cgroup v1 equivalents.

import { isDigits } from '../digits.js';
import { InvalidArgumentError } from '../errors.js';

export type LimitValue = string | number | bigint;

/** How one v2 knob maps onto v1 files of the same controller. */
interface Knob {
  controller: string;
  v2: string;
  v1: string[];
  /** v2-style value → [v1 file, value] writes, in order. */
  toV1(value: string): Array<[string, string]>;
  /** Reads the v1 files back into the v2 form. */
  fromV1(read: (file: string) => string): string;
}

/** v1 memory limits read back as "unlimited" are PAGE_COUNTER_MAX pages: anything this large. */
const V1_UNLIMITED = 1n << 62n;

const CPU_SHARES_MIN = 2n;
const CPU_SHARES_MAX = 262144n;
const CPU_WEIGHT_MIN = 1n;
const CPU_WEIGHT_MAX = 10000n;
const CPU_WEIGHT_DEFAULT = 100n;
const CPU_SHARES_DEFAULT = 1024n;

const clamp = (v: bigint, lo: bigint, hi: bigint) => (v < lo ? lo : v > hi ? hi : v);

function parseUint(name: string, value: string): bigint {
  if (!isDigits(value)) throw new InvalidArgumentError(`${name}: '${value}' is not a number or 'max'`);
  return BigInt(value);
}

const isMax = (v: string) => v === 'max' || v === 'infinity';

const KNOBS: Knob[] = [
  {
    controller: 'memory',
    v2: 'memory.max',
    v1: ['memory.limit_in_bytes'],
    toV1: (v) => [['memory.limit_in_bytes', isMax(v) ? '-1' : String(parseUint('memory.max', v))]],
    fromV1: (read) => {
      const n = BigInt(read('memory.limit_in_bytes'));
      return n < 0n || n >= V1_UNLIMITED ? 'max' : String(n);
    },
  },
  {
    controller: 'memory',
    v2: 'memory.high',
    v1: ['memory.soft_limit_in_bytes'],
    toV1: (v) => [['memory.soft_limit_in_bytes', isMax(v) ? '-1' : String(parseUint('memory.high', v))]],
    fromV1: (read) => {
      const n = BigInt(read('memory.soft_limit_in_bytes'));
      return n < 0n || n >= V1_UNLIMITED ? 'max' : String(n);
    },
  },
  {
    controller: 'pids',
    v2: 'pids.max',
    v1: ['pids.max'],
    toV1: (v) => [['pids.max', isMax(v) ? 'max' : String(parseUint('pids.max', v))]],
    fromV1: (read) => read('pids.max'),
  },
  {
    // systemd's conversion: shares = weight * 1024 / 100, clamped to the v1 range.
    controller: 'cpu',
    v2: 'cpu.weight',
    v1: ['cpu.shares'],
    toV1: (v) => {
      const w = clamp(parseUint('cpu.weight', v), CPU_WEIGHT_MIN, CPU_WEIGHT_MAX);
      return [
        [
          'cpu.shares',
          String(clamp((w * CPU_SHARES_DEFAULT) / CPU_WEIGHT_DEFAULT, CPU_SHARES_MIN, CPU_SHARES_MAX)),
        ],
      ];
    },
    fromV1: (read) => {
      const s = BigInt(read('cpu.shares'));
      const w = (s * CPU_WEIGHT_DEFAULT + CPU_SHARES_DEFAULT / 2n) / CPU_SHARES_DEFAULT;
      return String(clamp(w, CPU_WEIGHT_MIN, CPU_WEIGHT_MAX));
    },
  },
  {
    // v2 "QUOTA PERIOD" (QUOTA may be 'max'); v1 splits it into two files, period first.
    controller: 'cpu',
    v2: 'cpu.max',
    v1: ['cpu.cfs_period_us', 'cpu.cfs_quota_us'],
    toV1: (v) => {
      const [quota = '', period] = v.trim().split(/\s+/);
      const writes: Array<[string, string]> = [];
      if (period !== undefined)
        writes.push(['cpu.cfs_period_us', String(parseUint('cpu.max period', period))]);
      writes.push(['cpu.cfs_quota_us', isMax(quota) ? '-1' : String(parseUint('cpu.max quota', quota))]);
      return writes;
    },
    fromV1: (read) => {
      const quota = read('cpu.cfs_quota_us');
      return `${quota.startsWith('-') ? 'max' : quota} ${read('cpu.cfs_period_us')}`;
    },
  },
];

/** The knob for a v2 or v1 name, if we know how to translate it. */
export function findKnob(name: string): Knob | undefined {
  return KNOBS.find((k) => k.v2 === name || k.v1.includes(name));
}

/** The controller a limit file belongs to (`memory.max` → `memory`). */
export function controllerOf(name: string): string {
  const knob = findKnob(name);
  if (knob) return knob.controller;
  const dot = name.indexOf('.');
  if (dot <= 0 || name.includes('/') || name.startsWith('cgroup.')) {
    throw new InvalidArgumentError(`'${name}' is not a controller file`);
  }
  return name.slice(0, dot);
}

export function formatValue(name: string, value: LimitValue): string {
  const s = typeof value === 'string' ? value.trim() : String(value);
  if (s === '' || /[\n\0]/.test(s)) throw new InvalidArgumentError(`${name}: invalid value '${s}'`);
  if (typeof value !== 'string' && BigInt(value) < 0n)
    throw new InvalidArgumentError(`${name}: negative value`);
  return s;
}

/** The v2 value of a v1-named knob, for when a caller passes v1 names on a v2 system. */
export function v1ValueToV2(name: string, value: string): string {
  const knob = findKnob(name);
  if (!knob || knob.v2 === name) return value;
  const map = new Map<string, string>([[name, value]]);
  return knob.fromV1((f) => map.get(f) ?? (f === 'cpu.cfs_period_us' ? '100000' : '0'));
}

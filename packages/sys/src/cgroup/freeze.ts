// Freezing a cgroup (v2 cgroup.freeze or the v1 freezer) so that killing it cannot race forks.

import { sleep } from '../loop/sleep.js';
import { readTextIfExists, writeText } from './fs.js';

export interface Freezer {
  kind: 'v2' | 'v1';
  dir: string;
}

/** The freezer usable for a cgroup: v2's when the unified dir has cgroup.freeze, else the v1 freezer. */
export function findFreezer(
  unifiedDir: string | undefined,
  v1FreezerDir: string | undefined,
): Freezer | undefined {
  if (unifiedDir !== undefined && readTextIfExists(`${unifiedDir}/cgroup.freeze`) !== undefined) {
    return { kind: 'v2', dir: unifiedDir };
  }
  if (v1FreezerDir !== undefined && readTextIfExists(`${v1FreezerDir}/freezer.state`) !== undefined) {
    return { kind: 'v1', dir: v1FreezerDir };
  }
  return undefined;
}

function isFrozen(f: Freezer): boolean {
  if (f.kind === 'v2') return /^frozen 1$/m.test(readTextIfExists(`${f.dir}/cgroup.events`) ?? '');
  return (readTextIfExists(`${f.dir}/freezer.state`) ?? '').trim() === 'FROZEN';
}

/** Freezes and waits (bounded) until the kernel reports it frozen. Returns whether it got there. */
export async function freeze(f: Freezer, timeoutMs = 1000): Promise<boolean> {
  writeText(
    f.kind === 'v2' ? `${f.dir}/cgroup.freeze` : `${f.dir}/freezer.state`,
    f.kind === 'v2' ? '1' : 'FROZEN',
  );
  const deadline = Date.now() + timeoutMs;
  while (!isFrozen(f)) {
    // A task in uninterruptible sleep can hold it in FREEZING; go on without the guarantee.
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

export function thaw(f: Freezer): void {
  writeText(
    f.kind === 'v2' ? `${f.dir}/cgroup.freeze` : `${f.dir}/freezer.state`,
    f.kind === 'v2' ? '0' : 'THAWED',
  );
}

const cell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` milliseconds (for short, bounded waits on kernel state). */
export function sleepSync(ms: number): void {
  Atomics.wait(cell, 0, 0, ms);
}

/** Resolves after `ms` milliseconds (node:timers/promises costs a module load at start). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

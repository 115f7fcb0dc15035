const cell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` milliseconds (for short, bounded waits on kernel state). */
export function sleepSync(ms: number): void {
  Atomics.wait(cell, 0, 0, ms);
}

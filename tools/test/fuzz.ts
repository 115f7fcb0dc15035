/**
 * Property-test run counts: the CI figure, multiplied by SD_FUZZ_SCALE for
 * the long mode outside CI (e.g. SD_FUZZ_SCALE=100 npx vitest run …), so one
 * knob turns every parser's property test into a long run.
 */
export function fuzzRuns(runs: number): number {
  return Math.max(1, Math.round(runs * scale()));
}

/** A test's time limit, scaled with its runs. */
export function fuzzTimeout(ms: number): number {
  return Math.round(ms * Math.max(1, scale()));
}

function scale(): number {
  const s = Number(process.env.SD_FUZZ_SCALE ?? '1');
  if (!Number.isFinite(s) || s <= 0)
    throw new Error(`SD_FUZZ_SCALE must be a positive number, not ${process.env.SD_FUZZ_SCALE}`);
  return s;
}

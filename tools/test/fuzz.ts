/**
 * Property-test run counts: the CI figure, multiplied by SD_FUZZ_SCALE for
 * the long mode outside CI (e.g. SD_FUZZ_SCALE=100 npx vitest run …), so one
 * knob turns every parser's property test into a long run.
 */
export function fuzzRuns(runs: number): number {
  const scale = Number(process.env.SD_FUZZ_SCALE ?? '1');
  if (!Number.isFinite(scale) || scale <= 0)
    throw new Error(`SD_FUZZ_SCALE must be a positive number, not ${process.env.SD_FUZZ_SCALE}`);
  return Math.max(1, Math.round(runs * scale));
}

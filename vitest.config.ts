import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const pkgs = ['sys', 'basic', 'gpt', 'nspawn', 'machined', 'importd', 'networkd-veth', 'llmnr'];
const alias = Object.fromEntries(
  pkgs.map((p) => [`@sd/${p}`, fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url))]),
);

// One run over every package and the end-to-end tests. Tests run in forked
// processes (koffi must not be used from worker threads), one file at a time
// where they share kernel state, and a global teardown fails the run when
// anything a test made is still there (mounts, loop devices, cgroups).
export default defineConfig({
  resolve: { alias },
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'packages/*/test/**/*.test.ts',
      'test-e2e/**/*.test.ts',
      'tools/test/*.test.ts',
    ],
    pool: 'forks',
    fileParallelism: false,
    // The long fuzz mode (SD_FUZZ_SCALE, tools/test/fuzz.ts) gets time in proportion.
    testTimeout: 60_000 * Math.max(1, Number(process.env.SD_FUZZ_SCALE ?? 1) || 1),
    hookTimeout: 60_000,
    globalSetup: ['./tools/test/leak-check.ts'],
    reporters: ['default', './tools/test/summary-reporter.ts'],
  },
});

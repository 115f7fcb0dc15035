import { describe, expect, it } from 'vitest';
import type { Arch } from '../arch/index.js';
import { compileDeviceProgram, NSPAWN_DEVICE_ALLOW } from '../cgroup/devices.js';
import { buildContainerSeccompFilter, containerSeccompFilter } from '../seccomp/policy.js';
import { deviceRulesKey, prebuiltDeviceProgram, prebuiltSeccompFilter } from './prebuilt.js';
import { PREBUILT_DEVICE_PROGRAMS, PREBUILT_SECCOMP_FILTERS } from './programs.generated.js';

const REGENERATE = 'stale prebuilt program: run `npm run gen:prebuilt` and commit programs.generated.ts';

describe('prebuilt BPF programs', () => {
  it('holds only what the builders give, byte for byte, on every architecture', () => {
    expect(PREBUILT_SECCOMP_FILTERS.length).toBeGreaterThan(0);
    for (const e of PREBUILT_SECCOMP_FILTERS) {
      const inputs = { capabilities: BigInt(e.capabilities), systemCallFilter: e.systemCallFilter };
      const built = buildContainerSeccompFilter(inputs, e.arch).toString('base64');
      expect(built, `${REGENERATE} (${e.arch} ${e.capabilities})`).toBe(e.program);
    }
    for (const e of PREBUILT_DEVICE_PROGRAMS) {
      expect(compileDeviceProgram(e.rules).toString('base64'), REGENERATE).toBe(e.program);
      expect(deviceRulesKey(e.rules), REGENERATE).toBe(e.key);
    }
  });

  it('are found for their own inputs only', () => {
    for (const arch of ['x86_64', 'aarch64'] as Arch[]) {
      const e = PREBUILT_SECCOMP_FILTERS.find((x) => x.arch === arch)!;
      const capabilities = BigInt(e.capabilities);
      expect(prebuiltSeccompFilter(arch, { capabilities })?.toString('base64')).toBe(e.program);
      expect(containerSeccompFilter({ capabilities }, arch).toString('base64')).toBe(e.program);
      // Another capability set, a filter word, another architecture's program: not prebuilt.
      expect(prebuiltSeccompFilter(arch, { capabilities: capabilities ^ 1n })).toBeUndefined();
      expect(prebuiltSeccompFilter(arch, { capabilities, systemCallFilter: ['~@mount'] })).toBeUndefined();
      const other = arch === 'x86_64' ? 'aarch64' : 'x86_64';
      expect(prebuiltSeccompFilter(other, { capabilities })?.toString('base64')).not.toBe(e.program);
    }
    expect(prebuiltDeviceProgram(NSPAWN_DEVICE_ALLOW)).toBeDefined();
    expect(prebuiltDeviceProgram(NSPAWN_DEVICE_ALLOW.slice(1))).toBeUndefined();
    expect(
      prebuiltDeviceProgram([...NSPAWN_DEVICE_ALLOW, { type: 'b', major: 7, access: 'r' }]),
    ).toBeUndefined();
  });

  it('a filter with a word still fails on an unknown call (never served from the table)', () => {
    const capabilities = BigInt(PREBUILT_SECCOMP_FILTERS[0]!.capabilities);
    expect(() => containerSeccompFilter({ capabilities, systemCallFilter: ['no_such_call'] })).toThrow(
      /unknown system call 'no_such_call'/,
    );
  });
});

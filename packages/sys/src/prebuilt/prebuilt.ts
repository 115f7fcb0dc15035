import type { Arch } from '../arch/index.js';
import type { DeviceRule } from '../cgroup/devices.js';
import { PREBUILT_DEVICE_PROGRAMS, PREBUILT_SECCOMP_FILTERS } from './programs.generated.js';

/**
 * BPF programs built ahead of time for the inputs nearly every container
 * start has (systemd-nspawn's default capabilities, its device list), so a
 * start looks them up instead of building them: measured 2.5-3.5 ms of a
 * cold sd-nspawn start for the seccomp table filter and ~0.8 ms for the
 * device program. tools/build/gen-prebuilt.ts writes programs.generated.ts
 * from the builders themselves; a test rebuilds every entry and fails on
 * any difference, so an entry can only be what the builder gives.
 */

/** The inputs of a container's seccomp filter (containerSeccompFilter). */
export interface SeccompInputs {
  capabilities: bigint;
  systemCallFilter?: readonly string[];
}

export function seccompKey(arch: Arch, o: SeccompInputs): string {
  return `${arch}|${o.capabilities.toString(16)}|${(o.systemCallFilter ?? []).join(' ')}`;
}

export function deviceRulesKey(rules: readonly DeviceRule[]): string {
  return rules.map((r) => `${r.type}${r.major}:${r.minor ?? '*'}${r.access}`).join(' ');
}

let seccomp: Map<string, string> | undefined;
let devices: Map<string, string> | undefined;

/** The prebuilt seccomp filter for these inputs, if there is one. */
export function prebuiltSeccompFilter(arch: Arch, o: SeccompInputs): Buffer | undefined {
  seccomp ??= new Map(
    PREBUILT_SECCOMP_FILTERS.map((e) => [
      seccompKey(e.arch, { capabilities: BigInt(e.capabilities), systemCallFilter: e.systemCallFilter }),
      e.program,
    ]),
  );
  const b64 = seccomp.get(seccompKey(arch, o));
  return b64 === undefined ? undefined : Buffer.from(b64, 'base64');
}

/** The prebuilt device program for these rules, if there is one. */
export function prebuiltDeviceProgram(rules: readonly DeviceRule[]): Buffer | undefined {
  devices ??= new Map(PREBUILT_DEVICE_PROGRAMS.map((e) => [e.key, e.program]));
  const b64 = devices.get(deviceRulesKey(rules));
  return b64 === undefined ? undefined : Buffer.from(b64, 'base64');
}

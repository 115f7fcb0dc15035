import {
  capabilityFromName,
  containerAllowedSyscalls,
  containerSeccompFilter,
  hostArch,
  NSPAWN_DEFAULT_CAPABILITIES,
  prebuiltDeviceProgram,
  prebuiltSeccompFilter,
} from '@sd/sys';
import { describe, expect, it } from 'vitest';
import { parseArgv } from '../settings/argv.js';
import { parseSettingsFile } from '../settings/file.js';
import { capabilityMask, defaultSeccompFilter, deviceRules } from './security.js';

const bit = (name: string) => 1n << BigInt(capabilityFromName(name)!);

describe('capabilityMask', () => {
  it("is systemd-nspawn's default set without options", () => {
    expect(capabilityMask(parseArgv([]).settings)).toBe(NSPAWN_DEFAULT_CAPABILITIES);
    expect(NSPAWN_DEFAULT_CAPABILITIES & bit('CAP_SYS_ADMIN')).not.toBe(0n);
    expect(NSPAWN_DEFAULT_CAPABILITIES & bit('CAP_SYS_MODULE')).toBe(0n);
  });

  it('--drop-capability removes, --capability adds, drops win', () => {
    const dropped = capabilityMask(parseArgv(['--drop-capability=CAP_SYS_ADMIN,CAP_MKNOD']).settings);
    expect(dropped).toBe(NSPAWN_DEFAULT_CAPABILITIES & ~bit('CAP_SYS_ADMIN') & ~bit('CAP_MKNOD'));
    const added = capabilityMask(parseArgv(['--capability=CAP_NET_ADMIN']).settings);
    expect(added).toBe(NSPAWN_DEFAULT_CAPABILITIES | bit('CAP_NET_ADMIN'));
    const both = capabilityMask(
      parseArgv(['--capability=CAP_SYS_MODULE', '--drop-capability=CAP_SYS_MODULE']).settings,
    );
    expect(both & bit('CAP_SYS_MODULE')).toBe(0n);
    expect(capabilityMask(parseArgv(['--drop-capability=all']).settings)).toBe(0n);
    expect(() => capabilityMask(parseArgv(['--drop-capability=CAP_NOPE']).settings)).toThrow(/CAP_NOPE/);
  });

  it('drives the capability-dependent part of the seccomp filter', () => {
    const s = parseArgv(['--drop-capability=CAP_SYS_PTRACE,CAP_SYS_BOOT']).settings;
    const allowed = containerAllowedSyscalls({ capabilities: capabilityMask(s) });
    expect(allowed.has('ptrace')).toBe(false);
    expect(allowed.has('reboot')).toBe(false);
    expect(defaultSeccompFilter(s).equals(defaultSeccompFilter(parseArgv([]).settings))).toBe(false);
    const withModule = parseArgv(['--capability=CAP_SYS_MODULE']).settings;
    expect(containerAllowedSyscalls({ capabilities: capabilityMask(withModule) }).has('finit_module')).toBe(
      true,
    );
  });
});

describe('--system-call-filter', () => {
  it('is the @sd/sys container filter with the words applied', () => {
    const s = parseArgv([
      '--system-call-filter=@keyring open_by_handle_at',
      '--system-call-filter=~@mount',
    ]).settings;
    expect(s.systemCallFilter).toEqual(['@keyring', 'open_by_handle_at', '~@mount']);
    expect(defaultSeccompFilter(s)).toBe(
      containerSeccompFilter({
        capabilities: NSPAWN_DEFAULT_CAPABILITIES,
        systemCallFilter: s.systemCallFilter,
      }),
    );
    const allowed = containerAllowedSyscalls({
      capabilities: NSPAWN_DEFAULT_CAPABILITIES,
      systemCallFilter: s.systemCallFilter,
    });
    expect(allowed.has('keyctl')).toBe(true);
    expect(allowed.has('open_by_handle_at')).toBe(true);
    expect(allowed.has('mount')).toBe(false);
  });

  it('refuses unknown calls and groups with an error naming them', () => {
    expect(() => parseArgv(['--system-call-filter=frobnicate'])).toThrow(
      /--system-call-filter=frobnicate: unknown system call 'frobnicate'/,
    );
    expect(() => parseArgv(['--system-call-filter=~@nonsense'])).toThrow(
      /unknown system call group '@nonsense'/,
    );
    expect(() => parseSettingsFile('[Exec]\nSystemCallFilter=@nonsense\n', 'x.nspawn')).toThrow(/@nonsense/);
  });

  it('takes the same syntax in .nspawn files', () => {
    const f = parseSettingsFile('[Exec]\nSystemCallFilter=~@mount kill\n', 'x.nspawn');
    expect(JSON.stringify(f)).toContain('"~@mount","~kill"');
  });
});

describe('prebuilt programs', () => {
  // A start with these settings looks its BPF programs up instead of building them
  // (@sd/sys prebuilt/, ~3 ms of a cold start): a change of defaults must regenerate them.
  it.each([[['-D', '/x']], [['-D', '/x', '--private-network']], [['-D', '/x', '-n', '-b']]])(
    'serve the usual start %j (else run `npm run gen:prebuilt`)',
    (argv) => {
      const { settings } = parseArgv(argv);
      const inputs = { capabilities: capabilityMask(settings), systemCallFilter: settings.systemCallFilter };
      expect(prebuiltSeccompFilter(hostArch(), inputs)).toBeDefined();
      expect(prebuiltDeviceProgram(deviceRules(settings))).toBeDefined();
    },
  );
});

import { describe, expect, it } from 'vitest';
import {
  ALL_CAPABILITIES,
  CAP,
  CAP_LAST_KNOWN,
  capabilityFromName,
  capabilityList,
  capabilityName,
  NSPAWN_DEFAULT_CAPABILITIES,
  parseCapabilityList,
} from './names.js';

describe('capability names', () => {
  it('numbers them as the kernel does', () => {
    expect(CAP.CHOWN).toBe(0);
    expect(CAP.SYS_ADMIN).toBe(21);
    expect(CAP.NET_ADMIN).toBe(12);
    expect(CAP.CHECKPOINT_RESTORE).toBe(40);
    expect(CAP_LAST_KNOWN).toBe(40);
    expect(capabilityName(21)).toBe('CAP_SYS_ADMIN');
    expect(capabilityName(50)).toBe('50');
  });

  it('reads names in any case, and numbers', () => {
    expect(capabilityFromName('cap_sys_admin')).toBe(21);
    expect(capabilityFromName('CAP_BPF')).toBe(39);
    expect(capabilityFromName('7')).toBe(7);
    expect(capabilityFromName('64')).toBeUndefined();
    expect(capabilityFromName('SYS_ADMIN')).toBeUndefined();
  });

  it('parses lists', () => {
    expect(parseCapabilityList('CAP_SYS_ADMIN,CAP_NET_ADMIN')).toBe((1n << 21n) | (1n << 12n));
    expect(parseCapabilityList(' cap_chown  cap_kill ')).toBe(1n | (1n << 5n));
    expect(parseCapabilityList('all')).toBe(ALL_CAPABILITIES);
    expect(ALL_CAPABILITIES).toBe((1n << 41n) - 1n);
  });

  it('names the entry it does not know', () => {
    expect(() => parseCapabilityList('CAP_SYS_ADMIN,CAP_FLY')).toThrow(/unknown capability 'CAP_FLY'/);
    expect(() => parseCapabilityList(' , ')).toThrow(/empty/);
  });

  it("has systemd-nspawn's default set", () => {
    const names = capabilityList(NSPAWN_DEFAULT_CAPABILITIES);
    expect(names).toHaveLength(26);
    expect(names).toContain('CAP_SYS_ADMIN');
    expect(names).toContain('CAP_NET_RAW');
    expect(names).not.toContain('CAP_NET_ADMIN');
    expect(names).not.toContain('CAP_SYS_MODULE');
    expect(NSPAWN_DEFAULT_CAPABILITIES).toBe(0xfdecafffn);
  });
});

import { describe, expect, it } from 'vitest';
import { containerSeccompFilter, DENIED_SYSCALLS } from './policy.js';

describe('containerSeccompFilter', () => {
  it('is built once per setting and reused', () => {
    const a = containerSeccompFilter({ capabilities: 0xa80425fbn });
    expect(containerSeccompFilter({ capabilities: 0xa80425fbn })).toBe(a);
    expect(containerSeccompFilter({ capabilities: 0xa80425fbn, systemCallFilter: [] })).toBe(a);
    const more = containerSeccompFilter({ capabilities: 0xa80425fbn, systemCallFilter: ['~mount'] });
    expect(more).not.toBe(a);
    expect(more.length).toBeGreaterThan(a.length);
    expect(DENIED_SYSCALLS).toContain('kexec_load');
  });

  it('refuses unknown calls and groups with a clear error', () => {
    expect(() => containerSeccompFilter({ capabilities: 0n, systemCallFilter: ['nosuchcall'] })).toThrow(
      /Unknown system call in --system-call-filter: nosuchcall/,
    );
    expect(() => containerSeccompFilter({ capabilities: 0n, systemCallFilter: ['@mount'] })).toThrow(
      /@mount/,
    );
  });
});

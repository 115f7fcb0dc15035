import { describe, expect, it } from 'vitest';
import { buildShellProgram, mergeEnv, planShell } from './shell.js';
import { parseGroups, parsePasswd } from './users.js';

const root = { name: 'root', uid: 0, gid: 0, groups: [0], home: '/root', shell: '/bin/ash' };

describe('entering machines', () => {
  it('reads passwd and group entries', () => {
    const passwd = 'root:x:0:0:root:/root:/bin/ash\nalice:x:1000:1000::/home/alice:/bin/sh\n';
    expect(parsePasswd(passwd, 'alice')).toEqual({
      name: 'alice',
      uid: 1000,
      gid: 1000,
      home: '/home/alice',
      shell: '/bin/sh',
    });
    expect(parsePasswd(passwd, '1000')?.name).toBe('alice');
    expect(parsePasswd(passwd, 'bob')).toBeUndefined();
    expect(parseGroups('wheel:x:10:alice,bob\nusers:x:100:\n', 'alice')).toEqual([10]);
  });

  it('plans a login shell by default and lets the caller override the environment', () => {
    const p = planShell({ user: '', path: '', args: [], env: ['TERM=xterm'] }, root);
    expect([p.path, p.argv]).toEqual(['/bin/ash', ['-ash']]);
    expect(p.envp).toContain('TERM=xterm');
    expect(p.envp).not.toContain('TERM=vt220');
    expect(planShell({ user: '', path: '/bin/echo', args: [], env: [] }, root).argv).toEqual(['/bin/echo']);
    expect(() => planShell({ user: '', path: 'sh', args: [], env: [] }, root)).toThrow(/not absolute/);
    expect(() => mergeEnv([], ['NOEQUALS'])).toThrow(/Invalid environment/);
  });

  it('joins, becomes the user, takes the terminal and execs, in that order', () => {
    const plan = planShell({ user: '', path: '/bin/sh', args: ['sh'], env: [] }, root);
    const steps = buildShellProgram({ pidfd: 7, nsFlags: 0x6c020000, peer: 9, plan }).steps.map(
      (s) => s.name,
    );
    const at = (n: string) => steps.indexOf(n);
    expect(at('setns')).toBeGreaterThan(at('read'));
    expect(at('setresuid')).toBeGreaterThan(at('setns'));
    expect(at('setsid')).toBeGreaterThan(at('setresuid'));
    expect(steps.at(-1)).toBe('execve');
  });
});

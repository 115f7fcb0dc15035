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

  it('stage 1 joins every namespace, confines itself, becomes the user, then execs the stub init', () => {
    const plan = planShell({ user: '', path: '/bin/sh', args: ['sh'], env: [] }, root);
    const security = { capBnd: 0xa80425fbn, noNewPrivs: true, seccomp: true };
    const program = buildShellProgram({
      pidfd: 7,
      nsFlags: 0x6c020000,
      peer: 9,
      plan,
      security,
      stubInit: 11,
    });
    const steps = program.steps.map((s) => s.name);
    const at = (n: string) => steps.indexOf(n);
    const setns = program.steps[at('setns')]!;
    expect(setns.args).toEqual([7, 0x6c020000 | 0x20000000 /* CLONE_NEWPID */]);
    expect(program.canShareMemory).toBe(false);
    expect(at('setns')).toBeGreaterThan(at('read'));
    expect(at('prctl')).toBeGreaterThan(at('setns'));
    expect(at('seccomp')).toBeGreaterThan(at('prctl'));
    expect(at('setresuid')).toBeGreaterThan(at('seccomp'));
    expect(at('capset')).toBeGreaterThan(at('setresuid'));
    expect(steps.lastIndexOf('prctl')).toBeGreaterThan(at('capset')); // no_new_privs
    expect(at('setsid')).toBeGreaterThan(at('setns'));
    expect(steps.at(-1)).toBe('execveat');
    expect(steps).not.toContain('execve');
  });

  it('leaves out the filter and no_new_privs when the leader has neither', () => {
    const plan = planShell({ user: '', path: '/bin/sh', args: ['sh'], env: [] }, root);
    const security = { capBnd: 0xa80425fbn, noNewPrivs: false, seccomp: false };
    const program = buildShellProgram({ pidfd: 7, nsFlags: 0, peer: 9, plan, security, stubInit: 11 });
    const steps = program.steps.map((s) => s.name);
    expect(steps).not.toContain('seccomp');
    expect(program.describe().filter((d) => d.startsWith('prctl(38,'))).toEqual([]);
  });
});

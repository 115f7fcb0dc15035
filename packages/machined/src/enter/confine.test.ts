import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseLeaderStatus } from './confine.js';

const STATUS = `Name:\tsh
Umask:\t0022
State:\tS (sleeping)
CapInh:\t0000000000000000
CapPrm:\t00000000a80425fb
CapEff:\t00000000a80425fb
CapBnd:\t00000000a80425fb
CapAmb:\t0000000000000000
NoNewPrivs:\t1
Seccomp:\t2
Seccomp_filters:\t1
`;

describe('leader security', () => {
  it('reads the bounding set, no_new_privs and seccomp mode from /proc/PID/status', () => {
    expect(parseLeaderStatus(STATUS)).toEqual({ capBnd: 0xa80425fbn, noNewPrivs: true, seccomp: true });
    const plain = STATUS.replace('NoNewPrivs:\t1', 'NoNewPrivs:\t0').replace('Seccomp:\t2', 'Seccomp:\t0');
    expect(parseLeaderStatus(plain)).toEqual({ capBnd: 0xa80425fbn, noNewPrivs: false, seccomp: false });
  });

  it('refuses a status without a bounding set', () => {
    expect(() => parseLeaderStatus('Name:\tx\n')).toThrow(/CapBnd/);
    expect(() => parseLeaderStatus('CapBnd:\tzz\n')).toThrow(/CapBnd/);
  });
});

// Every process sd-machined spawns says it does not share the daemon's
// memory: a forgotten option would otherwise fall back to spawn()'s default.
describe('every spawn in sd-machined', () => {
  const src = fileURLToPath(new URL('../', import.meta.url));
  const files = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory()
        ? files(join(dir, e.name))
        : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')
          ? [join(dir, e.name)]
          : [],
    );

  it('passes shareMemory: false', () => {
    let calls = 0;
    for (const f of files(src)) {
      const text = readFileSync(f, 'utf8');
      if (!/from '@sd\/sys'/.test(text)) continue;
      // spawn( of @sd/sys; machinectl's node:child_process spawn is another function.
      if (/import \{[^}]*\bspawn as\b/.test(text)) throw new Error(`${f} renames spawn: check it by hand`);
      const fromSys = /import \{[^}]*\bspawn\b[^}]*\} from '@sd\/sys'/.test(text);
      if (!fromSys) continue;
      for (const m of text.matchAll(/\bspawn\(/g)) {
        calls++;
        const args = text.slice(m.index, m.index + 400);
        const close = matchParen(args);
        expect(args.slice(0, close), `${f}: ${args.slice(0, 60)}`).toMatch(/shareMemory: false/);
      }
    }
    expect(calls).toBeGreaterThanOrEqual(3);
  });
});

function matchParen(s: string): number {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')' && --depth === 0) return i;
  }
  return s.length;
}

describe('the bind-mount helper', () => {
  it('cannot share memory, holds only the capabilities it needs, resolves the target chrooted in the machine, never execs', async () => {
    const { buildBindProgram } = await import('../transfer/bind.js');
    const p = buildBindProgram({
      pidfd: 5,
      rootFd: 6,
      tree: 7,
      dest: '/srv/x/',
      isDir: true,
      mkdir: true,
      creator: { uid: 1000, gid: 1000 },
    });
    expect(p.canShareMemory).toBe(false);
    const steps = p.describe();
    const at = (prefix: string) => steps.findIndex((s) => s.startsWith(prefix));
    // CAP_SETGID, CAP_SETUID, CAP_SYS_CHROOT, CAP_SYS_ADMIN
    expect(steps[at('capset(')]).toContain('e=0x2400c0 p=0x2400c0 i=0x0');
    expect(at('capset(')).toBeLessThan(at('fchdir('));
    expect(at('setfsuid(')).toBeLessThan(at('fchdir('));
    expect(at('chroot(')).toBeLessThan(at('mkdirat('));
    expect(steps.filter((s) => s.startsWith('mkdirat('))).toEqual([
      'mkdirat(-100, "/srv", 493)',
      'mkdirat(-100, "/srv/x", 493)',
    ]);
    expect(steps.find((s) => s.includes('move_mount'))).toContain('"/srv/x"');
    expect(p.steps.map((s) => s.name)).not.toContain('execve');
    expect(p.steps.at(-1)?.name).toBe('exit_group');
  });
});

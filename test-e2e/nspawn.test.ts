import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { candidateShift } from '../packages/nspawn/src/container/userns.js';
import { makeBusyboxTree, NSPAWN_CLI, sdNspawn, sdNspawnAsync } from './lib/trees.js';

// sd-nspawn end to end, through the built CLI: busybox trees and the host's own OS.

let tree: ReturnType<typeof makeBusyboxTree>;
beforeAll(() => {
  tree = makeBusyboxTree();
});
afterAll(() => tree?.remove());

/** No mount and no notify socket of our test trees' containers is left (other runs may be going on). */
function noStagingLeft(): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  expect(mounts).not.toContain('/run/sd-nspawn/');
  const left = (() => {
    try {
      // nspawn-uid holds the uid range locks; images/ the mount points of -i.
      return readdirSync('/run/sd-nspawn').filter((f) => /^(sd-e2e-|vol\d|box\d|userns-)/.test(f));
    } catch {
      return [];
    }
  })();
  expect(left).toEqual([]);
}

describe('sd-nspawn on a busybox tree', () => {
  it('runs the command as PID 1 of its own pid namespace', () => {
    const r = sdNspawn([
      '-q',
      '-D',
      tree.dir,
      'sh',
      '-c',
      'echo $$; hostname; cat /run/host/container-manager',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').slice(0, 3)).toEqual([
      '1',
      tree.dir
        .split('/')
        .pop()!
        .replace(/[^A-Za-z0-9-]/g, '-'),
      'systemd-nspawn',
    ]);
    expect(r.code).toBe(0);
    noStagingLeft();
  });

  it('passes the exit status through', () => {
    for (const code of [0, 1, 42])
      expect(sdNspawn(['-q', '-D', tree.dir, 'sh', '-c', `exit ${code}`]).code).toBe(code);
    // PID 1 ignores even SIGKILL from inside its namespace: kill a child shell instead.
    expect(sdNspawn(['-q', '-D', tree.dir, 'sh', '-c', 'sh -c "kill -9 \\$\\$"; exit $?']).code).toBe(137);
  });

  it('gives the container interface: environment, /dev, read-only /proc/sys and /sys', () => {
    const r = sdNspawn([
      '-q',
      '-D',
      tree.dir,
      '--machine=box1',
      '-E',
      'FOO=bar',
      'sh',
      '-c',
      'echo $container $FOO; ls /dev; touch /sys/x 2>&1; echo 1 > /proc/sys/kernel/domainname 2>&1; hostname',
    ]);
    const out = r.stdout;
    expect(out).toContain('systemd-nspawn bar');
    for (const node of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'ptmx', 'pts', 'shm', 'fd'])
      expect(out).toMatch(new RegExp(`^${node}$`, 'm'));
    expect(out).toMatch(/Read-only file system/);
    expect(out.trim().split('\n').at(-1)).toBe('box1');
    expect(r.code).toBe(0);
  });

  it('--private-network: a network namespace of its own with lo up', () => {
    const r = sdNspawn([
      '-q',
      '-D',
      tree.dir,
      '--private-network',
      'sh',
      '-c',
      'ls /sys/class/net; ip -o link show lo',
    ]);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('lo');
    expect(lines[1]).toMatch(/<LOOPBACK,UP/);
    expect(r.code).toBe(0);
  });

  it('--resolv-conf: copies the host file into a writable tree, binds it into a read-only one', () => {
    const host = readFileSync('/etc/resolv.conf', 'utf8');
    rmSync(`${tree.dir}/etc/resolv.conf`, { force: true });
    expect(sdNspawn(['-q', '-D', tree.dir, '--resolv-conf=off', 'true']).code).toBe(0);
    expect(existsSync(`${tree.dir}/etc/resolv.conf`)).toBe(false);
    let r = sdNspawn(['-q', '-D', tree.dir, '--resolv-conf=copy-host', 'cat', '/etc/resolv.conf']);
    expect(r.stdout).toBe(host);
    expect(readFileSync(`${tree.dir}/etc/resolv.conf`, 'utf8')).toBe(host);
    writeFileSync(`${tree.dir}/etc/resolv.conf`, 'nameserver 192.0.2.1\n');
    r = sdNspawn([
      '-q',
      '-D',
      tree.dir,
      '--read-only',
      'sh',
      '-c',
      'cat /etc/resolv.conf; grep -c " /etc/resolv.conf " /proc/self/mountinfo',
    ]);
    expect(r.stdout).toBe(`${host}1\n`);
    expect(readFileSync(`${tree.dir}/etc/resolv.conf`, 'utf8')).toBe('nameserver 192.0.2.1\n');
  });

  it('--timezone: binds, copies or leaves the host zone alone', () => {
    const host = readFileSync('/etc/localtime');
    rmSync(`${tree.dir}/etc/localtime`, { force: true });
    expect(sdNspawn(['-q', '-D', tree.dir, '--timezone=off', 'true']).code).toBe(0);
    expect(existsSync(`${tree.dir}/etc/localtime`)).toBe(false);
    // A read-only tree needs the file to bind over (a distribution has one).
    writeFileSync(`${tree.dir}/etc/localtime`, '');
    const bound = sdNspawn([
      '-q',
      '-D',
      tree.dir,
      '--read-only',
      '--timezone=bind',
      'sh',
      '-c',
      'md5sum < /etc/localtime',
    ]);
    expect(bound.code, bound.stderr).toBe(0);
    expect(bound.stdout.split(/\s/)[0]).toBe(createHash('md5').update(host).digest('hex'));
    expect(sdNspawn(['-q', '-D', tree.dir, '--timezone=copy', 'true']).code).toBe(0);
    expect(readFileSync(`${tree.dir}/etc/localtime`).equals(host)).toBe(true);
  });

  it('refuses bad input with a clear error and status 1', () => {
    let r = sdNspawn(['-D', '/nonexistent/tree', 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Directory \/nonexistent\/tree doesn't exist/);
    r = sdNspawn(['--no-such-option', '-D', tree.dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unrecognized option '--no-such-option'/);
    r = sdNspawn(['-D', tree.dir, '--machine=-bad-', 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Invalid machine name/);
    r = sdNspawn(['-q', '-D', tree.dir, 'no-such-command']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no-such-command/);
    noStagingLeft();
  });

  it('asks the payload to stop on SIGTERM to sd-nspawn (--kill-signal chooses the signal)', async () => {
    const { spawn } = await import('node:child_process');
    // Without --kill-signal a payload that is not a booted init is killed (SIGKILL), as systemd-nspawn does.
    for (const [extra, expected] of [
      [[], 137],
      [['--kill-signal=SIGTERM'], 7],
      [['--kill-signal=SIGUSR1'], 8],
    ] as const) {
      const child = spawn(
        process.execPath,
        [
          NSPAWN_CLI,
          '-q',
          '--pipe',
          '-D',
          tree.dir,
          ...extra,
          'sh',
          '-c',
          'trap "exit 7" TERM; trap "exit 8" USR1; echo up; while :; do sleep 0.1; done',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      await new Promise<void>((resolve) =>
        child.stdout.on('data', (d) => String(d).includes('up') && resolve()),
      );
      child.kill('SIGTERM');
      const code = await new Promise((resolve) => child.on('exit', resolve));
      expect(code).toBe(expected);
    }
    noStagingLeft();
  });

  it('runs one writable instance per tree', async () => {
    const first = sdNspawnAsync(['-q', '-D', tree.dir, 'sleep', '2']);
    await new Promise((r) => setTimeout(r, 700));
    const second = sdNspawn(['-q', '-D', tree.dir, 'true']);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/busy/);
    expect((await first).code).toBe(0);
  });
});

describe('sd-nspawn --private-users', () => {
  it('maps root to a high uid; files created keep their on-disk owner through the idmapped root', () => {
    const r = sdNspawn([
      '-q',
      '-D',
      tree.dir,
      '--private-users=pick',
      'sh',
      '-c',
      'id -u; cat /proc/self/uid_map; touch /root/made-inside; ls -ln /root/made-inside',
    ]);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('0');
    const [inside, outside, count] = lines[1]!.trim().split(/\s+/).map(Number);
    expect(inside).toBe(0);
    expect(outside).toBeGreaterThanOrEqual(0x80000);
    expect(count).toBe(65536);
    expect(lines[2]).toMatch(/^-\S+\s+1\s+0\s+0\s/);
    expect(statSync(`${tree.dir}/root/made-inside`).uid).toBe(0);
    expect(r.code).toBe(0);
  });

  it('gives two containers at once different ranges', async () => {
    // Two names whose first candidate range is the same: only the lock keeps them apart.
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; !pair; i++) {
      const name = `tst-userns-${i}`;
      const other = seen.get(candidateShift(name, 0));
      if (other) pair = [other, name];
      else seen.set(candidateShift(name, 0), name);
    }
    const run = (name: string) =>
      sdNspawnAsync([
        '-q',
        '-D',
        tree.dir,
        '--read-only',
        `--machine=${name}`,
        '-U',
        'sh',
        '-c',
        'sleep 1; cat /proc/self/uid_map',
      ]);
    const [a, b] = await Promise.all([run(pair[0]), run(pair[1])]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const shift = (s: string) => Number(s.trim().split(/\s+/)[1]);
    expect(shift(a.stdout)).not.toBe(shift(b.stdout));
  });
  // The escape attempts of root inside run without -U in the Debian tree: escape-seccomp.test.ts.
});

describe("sd-nspawn on the host's own OS", () => {
  it('refuses / without --volatile', () => {
    const r = sdNspawn(['-D', '/', 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/volatile/);
  });

  it('--volatile=yes: the host /usr read-only, empty /etc and /var that vanish at exit', () => {
    const r = sdNspawn([
      '-q',
      '-D',
      '/',
      '--volatile=yes',
      '/bin/sh',
      '-c',
      'touch /usr/sd-test 2>&1; ls -A /etc | grep -vcE "^(resolv.conf|localtime)$"; echo hi > /etc/sd-volatile && cat /etc/sd-volatile; ls /var | wc -l',
    ]);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/Read-only file system/);
    expect(lines.slice(1)).toEqual(['0', 'hi', '0']);
    expect(r.code).toBe(0);
    expect(() => statSync('/etc/sd-volatile')).toThrow();
  });

  it('--volatile=state: the tree read-only, /var a tmpfs', () => {
    const r = sdNspawn([
      '-q',
      '-D',
      tree.dir,
      '--volatile=state',
      'sh',
      '-c',
      '(touch /etc/x) 2>&1; echo v > /var/x; cat /var/x',
    ]);
    expect(r.stdout.trim().split('\n')).toEqual([expect.stringMatching(/Read-only file system/), 'v']);
    expect(() => statSync(`${tree.dir}/var/x`)).toThrow();
  });

  it('--volatile=overlay: writes go to a tmpfs over the whole tree', () => {
    const r = sdNspawn([
      '-q',
      '-D',
      tree.dir,
      '--volatile=overlay',
      'sh',
      '-c',
      'echo o > /etc/overlaid; cat /etc/overlaid',
    ]);
    expect(r.stdout).toBe('o\n');
    expect(r.code).toBe(0);
    expect(() => statSync(`${tree.dir}/etc/overlaid`)).toThrow();
  });

  it('runs three volatile containers of one tree at the same time', async () => {
    const runs = [1, 2, 3].map((i) =>
      sdNspawnAsync([
        '-q',
        '-D',
        '/',
        '--volatile=yes',
        `--machine=vol${i}`,
        '/bin/sh',
        '-c',
        'sleep 1; hostname',
      ]),
    );
    const out = await Promise.all(runs);
    expect(out.map((o) => o.stdout.trim())).toEqual(['vol1', 'vol2', 'vol3']);
    expect(out.map((o) => o.code)).toEqual([0, 0, 0]);
    noStagingLeft();
  });
});

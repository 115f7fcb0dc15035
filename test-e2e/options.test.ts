import { createHash } from 'node:crypto';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree, sdNspawn } from './lib/trees.js';

// Options of sd-nspawn that change what the payload sees: --user, --chdir,
// --hostname, --resolv-conf, --timezone, /run/host, --overlay. Each is
// checked from inside the container and in the tree afterwards.

let tree: ReturnType<typeof makeBusyboxTree>;
let host: string;
beforeAll(() => {
  tree = makeBusyboxTree('tst-options-');
  // The tree's root is a mkdtemp directory (0700): an unprivileged --user must be able to enter it.
  chmodSync(tree.dir, 0o755);
  writeFileSync(join(tree.dir, 'etc/passwd'), 'tst:x:1234:2345:Test:/home/tst:/bin/sh\n', { flag: 'a' });
  writeFileSync(join(tree.dir, 'etc/group'), 'tstg:x:2345:\n', { flag: 'a' });
  mkdirSync(join(tree.dir, 'home/tst'), { recursive: true });
  host = mkdtempSync(join(tmpdir(), 'tst-options-host-'));
});
afterAll(() => {
  tree?.remove();
  rmSync(host, { recursive: true, force: true });
});

const sh = (args: string[], script: string) =>
  sdNspawn(['-q', '-D', tree.dir, '--machine=tst-options', ...args, 'sh', '-c', script]);
const lines = (r: { stdout: string }) => r.stdout.trim().split('\n');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('--user', () => {
  it('looks the user up in the container: uid, gid, HOME, USER, the home as working directory', () => {
    const r = sh(
      ['--user=tst'],
      'id -u; id -g; echo $HOME $USER $LOGNAME $SHELL; pwd; grep ^CapEff /proc/self/status',
    );
    expect(r.stderr).toBe('');
    expect(lines(r)).toEqual([
      '1234',
      '2345',
      '/home/tst tst tst /bin/sh',
      '/home/tst',
      'CapEff:\t0000000000000000',
    ]);
    expect(r.code).toBe(0);
  });

  it('takes a uid too, and refuses a name the container does not know', () => {
    expect(lines(sh(['--user=1234'], 'id -u; echo $HOME'))).toEqual(['1234', '/home/tst']);
    const r = sdNspawn(['-q', '-D', tree.dir, '--user=nosuch', 'true']);
    expect(r.stderr).toBe(
      "sd-nspawn: Failed to resolve user 'nosuch': no such user in the container's /etc/passwd\n",
    );
    expect(r.code).toBe(1);
  });

  it("reads the container's passwd, not the host's, through a planted absolute link", () => {
    // /etc/passwd -> an absolute path that exists only on the host, holding a user "leak".
    const t = makeBusyboxTree('tst-options-link-');
    try {
      const hostPasswd = join(host, 'passwd');
      writeFileSync(hostPasswd, 'leak:x:4242:4242::/:/bin/sh\n');
      rmSync(join(t.dir, 'etc/passwd'));
      symlinkSync(hostPasswd, join(t.dir, 'etc/passwd'));
      const r = sdNspawn(['-q', '-D', t.dir, '--user=leak', 'id', '-u']);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/Failed to resolve user 'leak'/);
      expect(r.code).toBe(1);
    } finally {
      t.remove();
    }
  });
});

describe('--chdir and --hostname', () => {
  it('--chdir sets the working directory; a missing one fails the start', () => {
    expect(lines(sh(['--chdir=/tmp'], 'pwd'))).toEqual(['/tmp']);
    const r = sh(['--chdir=/no-such-dir'], 'pwd');
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/chdir\("\/no-such-dir"\): ENOENT/);
    expect(r.code).toBe(1);
  });

  it('--hostname sets the UTS name (the machine name stays the default otherwise)', () => {
    expect(lines(sh(['--hostname=tst-host.example'], 'hostname'))).toEqual(['tst-host.example']);
    expect(lines(sh([], 'hostname'))).toEqual(['tst-options']);
    const r = sdNspawn(['-q', '-D', tree.dir, '--hostname=not valid', 'true']);
    expect(r.stderr).toBe('sd-nspawn: Invalid hostname: not valid\n');
    expect(r.code).toBe(1);
  });
});

describe('/run/host', () => {
  it("holds the container interface: manager, uuid, the host's os-release (same bytes), notify; all read-only", () => {
    const uuid = '0123456789abcdef0123456789abcdef';
    const r = sh(
      [`--uuid=${uuid}`],
      'ls /run/host; cat /run/host/container-manager /run/host/container-uuid; sha256sum /run/host/os-release; touch /run/host/x 2>&1; (echo x >> /run/host/os-release) 2>&1',
    );
    const hostOsRelease = readFileSync('/etc/os-release');
    expect(lines(r)).toEqual([
      'container-manager',
      'container-uuid',
      'notify',
      'os-release',
      'systemd-nspawn',
      '01234567-89ab-cdef-0123-456789abcdef',
      `${sha256(hostOsRelease)}  /run/host/os-release`,
      'touch: /run/host/x: Read-only file system',
      // The host's file, owned by a uid the user namespace does not map: refused before the read-only mount is.
      "sh: can't create /run/host/os-release: Permission denied",
    ]);
  });
});

describe('--resolv-conf', () => {
  const resolv = () => join(tree.dir, 'etc/resolv.conf');
  const run = (mode: string, extra: string[] = []) => {
    writeFileSync(resolv(), 'nameserver 192.0.2.1\n');
    return sh(
      [`--resolv-conf=${mode}`, ...extra],
      'cat /etc/resolv.conf; grep -c " /etc/resolv.conf " /proc/self/mountinfo; true',
    );
  };
  const hostResolv = readFileSync('/etc/resolv.conf', 'utf8');
  const staticResolv = '/usr/lib/systemd/resolv.conf';

  it('copy-host copies into the tree; copy-static the static stub file', () => {
    expect(run('copy-host').stdout).toBe(`${hostResolv}0\n`);
    expect(readFileSync(resolv(), 'utf8')).toBe(hostResolv);
    expect(run('copy-static').stdout).toBe(`${readFileSync(staticResolv, 'utf8')}0\n`);
  });

  it('bind-host mounts the host file read-only and leaves the tree alone', () => {
    const r = sh(
      ['--resolv-conf=bind-host'],
      'cat /etc/resolv.conf; (echo x >> /etc/resolv.conf) 2>&1; true',
    );
    // The host's file, owned by a uid the user namespace does not map: refused before the read-only mount is.
    expect(r.stdout).toBe(`${hostResolv}sh: can't create /etc/resolv.conf: Permission denied\n`);
    expect(run('bind-host').stdout).toBe(`${hostResolv}1\n`);
    expect(readFileSync(resolv(), 'utf8')).toBe('nameserver 192.0.2.1\n');
  });

  it('off leaves the file, delete removes it', () => {
    expect(run('off').stdout).toBe('nameserver 192.0.2.1\n0\n');
    run('delete');
    expect(() => lstatSync(resolv())).toThrow(/ENOENT/);
  });

  it('a symlinked resolv.conf: copy leaves it, replace makes it a file', () => {
    rmSync(resolv(), { force: true });
    writeFileSync(join(tree.dir, 'run-resolv'), 'nameserver 192.0.2.9\n');
    symlinkSync('../run-resolv', resolv());
    const c = sh(['--resolv-conf=copy-host'], 'cat /etc/resolv.conf');
    expect(c.stdout).toBe('nameserver 192.0.2.9\n');
    expect(readlinkSync(resolv())).toBe('../run-resolv');
    const r = sh(['--resolv-conf=replace-host'], 'cat /etc/resolv.conf');
    expect(r.stdout).toBe(hostResolv);
    expect(lstatSync(resolv()).isFile()).toBe(true);
    expect(readFileSync(join(tree.dir, 'run-resolv'), 'utf8')).toBe('nameserver 192.0.2.9\n');
  });

  it('auto: copy into a writable tree, bind into a read-only one, nothing with a private network', () => {
    expect(run('auto').stdout).toBe(`${hostResolv}0\n`);
    expect(run('auto', ['--read-only']).stdout).toBe(`${hostResolv}1\n`);
    expect(run('auto', ['--private-network']).stdout).toBe('nameserver 192.0.2.1\n0\n');
  });
});

describe('--timezone', () => {
  const localtime = () => join(tree.dir, 'etc/localtime');
  const hostZone = readFileSync('/etc/localtime');
  const reset = () => {
    rmSync(localtime(), { force: true });
    writeFileSync(localtime(), 'not a zone\n');
  };
  const look =
    'sha256sum /etc/localtime | cut -d" " -f1; grep -c " /etc/localtime " /proc/self/mountinfo; true';

  it('copy writes the host zone into the tree; bind mounts it; off and delete', () => {
    reset();
    expect(lines(sh(['--timezone=copy'], look))).toEqual([sha256(hostZone), '0']);
    expect(readFileSync(localtime())).toEqual(hostZone);
    reset();
    expect(lines(sh(['--timezone=bind'], look))).toEqual([sha256(hostZone), '1']);
    expect(readFileSync(localtime(), 'utf8')).toBe('not a zone\n');
    expect(lines(sh(['--timezone=off'], look))).toEqual([sha256('not a zone\n'), '0']);
    sh(['--timezone=delete'], 'true');
    expect(() => lstatSync(localtime())).toThrow(/ENOENT/);
  });

  it("symlink links to the tree's own zoneinfo; without it, the host file is bound instead", () => {
    const zone = /zoneinfo\/(.+)$/.exec(readlinkSync('/etc/localtime'))?.[1];
    expect(zone, 'the host /etc/localtime is a zoneinfo link').toBeDefined();
    reset();
    expect(lines(sh(['--timezone=symlink'], look))).toEqual([sha256(hostZone), '1']);
    mkdirSync(join(tree.dir, 'usr/share/zoneinfo', zone!, '..'), { recursive: true });
    writeFileSync(join(tree.dir, 'usr/share/zoneinfo', zone!), hostZone);
    try {
      const r = sh(
        ['--timezone=symlink'],
        'readlink /etc/localtime; grep -c " /etc/localtime " /proc/self/mountinfo; true',
      );
      expect(lines(r)).toEqual([`../usr/share/zoneinfo/${zone}`, '0']);
      expect(readlinkSync(localtime())).toBe(`../usr/share/zoneinfo/${zone}`);
    } finally {
      rmSync(join(tree.dir, 'usr'), { recursive: true, force: true });
    }
  });
});

describe('--overlay', () => {
  it('stacks the left-most tree lowest; changes go to the upper tree only', () => {
    const [low1, low2, up] = ['low1', 'low2', 'up'].map((d) => join(host, d)) as [string, string, string];
    for (const d of [low1, low2, up]) mkdirSync(d);
    writeFileSync(join(low1, 'a'), 'low1\n');
    writeFileSync(join(low1, 'only1'), 'only1\n');
    writeFileSync(join(low2, 'a'), 'low2\n');
    const r = sh(
      [`--overlay=${low1}:${low2}:${up}:/mnt/o`],
      'cat /mnt/o/a /mnt/o/only1; echo new > /mnt/o/only1',
    );
    expect(r.stdout, r.stderr).toBe('low2\nonly1\n');
    expect(readFileSync(join(up, 'only1'), 'utf8')).toBe('new\n');
    expect(readFileSync(join(low1, 'only1'), 'utf8')).toBe('only1\n');
    const ro = sh([`--overlay-ro=${low2}:${low1}:/mnt/o`], 'cat /mnt/o/a; touch /mnt/o/z 2>&1; true');
    expect(lines(ro)).toEqual(['low1', 'touch: /mnt/o/z: Read-only file system']);
  });
});

import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AT, MS, O, RESOLVE, S_IF } from '../src/constants.js';
import { InvalidArgumentError, SyscallError } from '../src/errors.js';
import { closeQuietly } from '../src/fd/fd.js';
import {
  fchmodat,
  fchownat,
  makedev,
  mkdirat,
  mknodat,
  readlinkat,
  statAt,
  symlinkat,
  unlinkat,
} from '../src/fs/at.js';
import { fdPath, mkdirInRoot, openat2, openInRoot, openRoot, resolveInRoot } from '../src/fs/resolve.js';
import { mount } from '../src/mount/mount.js';
import { umountTree } from '../src/mount/mountinfo.js';

// The safe resolver against hostile trees, as root on the real kernel. A
// canary file outside the root proves that nothing written "through" a
// planted link ever reaches the host.

let base: string;
let canary: string;
let outside: string;
let root: string;
let rootFd: number;
let canaryFd: number;
let n = 0;
const CANARY = 'canary, must stay unchanged';

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
let hostPasswd: string;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'sd-resolve-test-'));
  canary = join(base, 'canary');
  outside = join(base, 'outside');
  writeFileSync(canary, CANARY);
  mkdirSync(outside);
  hostPasswd = sha('/etc/passwd');
  // An fd of the canary for /proc/self/fd/N links.
  canaryFd = openSync(canary, 'r+');
});

beforeEach(() => {
  root = join(base, `root${n++}`);
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'a', 'b'), { recursive: true });
  writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:fake:/root:/bin/sh\n');
  rootFd = openRoot(root);
});

/** Nothing outside the roots changed: the canary, the outside dir, the host's passwd. */
function expectHostUntouched(): void {
  expect(readFileSync(canary, 'utf8')).toBe(CANARY);
  expect(readdirSync(outside)).toEqual([]);
  expect(readdirSync(base).filter((e) => !e.startsWith('root'))).toEqual(['canary', 'outside']);
  expect(sha('/etc/passwd')).toBe(hostPasswd);
}

afterEach(() => {
  closeQuietly(rootFd);
  umountTree(base, { detach: true });
  expectHostUntouched();
});

afterAll(() => {
  closeQuietly(canaryFd);
  umountTree(base, { detach: true });
  rmSync(base, { recursive: true, force: true });
});

/** Tries to create/truncate and write `path` in the root; the error code, or where it landed. */
function tryWrite(path: string): string {
  let fd: number;
  try {
    fd = openInRoot(rootFd, path, O.WRONLY | O.CREAT | O.TRUNC, 0o644);
  } catch (e) {
    if (e instanceof SyscallError) {
      expect(e.path).toBe(path);
      return e.code;
    }
    throw e;
  }
  try {
    writeSync(fd, 'pwned');
    const real = fdPath(fd);
    // Wherever it landed, it is inside the root.
    expect(real.startsWith(`${root}/`)).toBe(true);
    return real.slice(root.length);
  } finally {
    closeSync(fd);
  }
}

function tryRead(path: string): string {
  try {
    const fd = openInRoot(rootFd, path, O.RDONLY);
    try {
      return readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if (e instanceof SyscallError) return e.code;
    throw e;
  }
}

const link = (target: string, at: string) => symlinkSync(target, join(root, at));

describe('openInRoot', () => {
  it('clamps `..` chains at the root', () => {
    expect(tryRead('a/../../../etc/passwd')).toMatch(/fake/);
    expect(tryRead('../../../../../../etc/passwd')).toMatch(/fake/);
    expect(tryRead('/etc/passwd')).toMatch(/fake/);
    expect(tryWrite('a/b/../../../../canary')).toBe('/canary');
    expect(tryWrite('../../outside/x')).toBe('ENOENT');
    expect(resolveInRoot(rootFd, 'a/../../../etc/passwd')).toBe('/etc/passwd');
    expect(resolveInRoot(rootFd, '/')).toBe('/');
    expect(resolveInRoot(rootFd, '..')).toBe('/');
  });

  it('resolves absolute symlinks inside the root', () => {
    link('/etc/shadow', 'shadow');
    link('/etc/passwd', 'passwd');
    link(canary, 'abs-canary');
    link(outside, 'etc/abs-outside');
    expect(tryRead('shadow')).toBe('ENOENT'); // the host's /etc/shadow is never reached
    expect(tryRead('passwd')).toMatch(/fake/);
    expect(resolveInRoot(rootFd, 'passwd')).toBe('/etc/passwd');
    expect(tryWrite('abs-canary')).toBe('ENOENT'); // <root>/<base> does not exist
    expect(tryWrite('etc/abs-outside/x')).toBe('ENOENT');
    // Once the directories exist inside, the write lands there.
    mkdirInRoot(rootFd, base, 0o755, { parents: true });
    expect(tryWrite('abs-canary')).toBe(canary);
    expect(readFileSync(join(root, canary), 'utf8')).toBe('pwned');
    expect(resolveInRoot(rootFd, 'abs-canary')).toBe(canary);
  });

  it('keeps relative escaping symlinks and chains of links inside', () => {
    link('../../canary', 'rel');
    link('l2', 'l1');
    link('a/b/l3', 'l2');
    link('../../../../../../canary', 'a/b/l3');
    link('../..', 'a/up');
    link('/a/up/../../..', 'a/b/absup');
    expect(tryWrite('rel')).toBe('/canary');
    expect(tryWrite('l1')).toBe('/canary');
    expect(resolveInRoot(rootFd, 'l1')).toBe('/canary');
    expect(tryWrite('a/up/canary')).toBe('/canary');
    expect(tryWrite('a/b/absup/outside/x')).toBe('ENOENT');
    expect(resolveInRoot(rootFd, 'a/b/absup')).toBe('/');
    // A loop is an error, not a hang.
    link('loop2', 'loop1');
    link('loop1', 'loop2');
    expect(tryWrite('loop1')).toBe('ELOOP');
    // O_NOFOLLOW refuses a link in the last component.
    expect(() => openInRoot(rootFd, 'rel', O.RDONLY | O.NOFOLLOW)).toThrow(
      expect.objectContaining({ code: 'ELOOP' }),
    );
  });

  it('does not follow /proc magic links planted as symlinks', () => {
    link('/proc/self/root', 'selfroot');
    link(`/proc/self/fd/${canaryFd}`, 'fdlink');
    link(`../../../../../../../proc/self/fd/${canaryFd}`, 'a/relfd');
    link('/proc/1/root', 'pid1root');
    for (const p of ['fdlink', 'a/relfd', `selfroot${canary}`, `pid1root${canary}`, `selfroot${outside}/x`])
      expect(tryWrite(p)).toBe('ENOENT'); // "/proc" means <root>/proc, which is empty
  });

  it('refuses magic links through a bind of /proc into the tree', () => {
    mkdirSync(join(root, 'proc'));
    mount('/proc', join(root, 'proc'), null, MS.BIND);
    link('/proc/self/root', 'selfroot');
    link(`/proc/self/fd/${canaryFd}`, 'fdlink');
    link(`../../../../proc/thread-self/root${canary}`, 'a/b/thread');
    const attempts = [
      'selfroot/etc/passwd',
      `selfroot${canary}`,
      'fdlink',
      'a/b/thread',
      `proc/self/root${canary}`,
      `proc/self/fd/${canaryFd}`,
      `/proc/self/cwd/${canary}`,
      `proc/${process.pid}/root${outside}/x`,
      `proc/self/fd/${rootFd}/../canary`,
    ];
    for (const p of attempts) {
      expect(tryWrite(p), p).toBe('ELOOP');
      expect(tryRead(p), p).toBe('ELOOP');
    }
    // pid 1's root link may fail the ptrace access check first; refused either way.
    expect(['ELOOP', 'EACCES']).toContain(tryWrite(`proc/1/root${canary}`));
    // Ordinary files of the bound /proc are fine, unless crossing mounts is refused.
    expect(tryRead('proc/self/comm')).toMatch(/\w/);
    expect(() => openInRoot(rootFd, 'proc/self/comm', O.RDONLY, undefined, { noXdev: true })).toThrow(
      expect.objectContaining({ code: 'EXDEV', path: 'proc/self/comm' }),
    );
    expect(() => openInRoot(rootFd, 'etc/../../proc', O.PATH, undefined, { noXdev: true })).toThrow(/EXDEV/);
    expect(() => openInRoot(rootFd, 'l', O.PATH, undefined, { noSymlinks: true })).toThrow(/ENOENT/);
    expect(() => openInRoot(rootFd, 'selfroot', O.PATH, undefined, { noSymlinks: true })).toThrow(/ELOOP/);
  });

  it('refuses empty paths and NUL bytes before calling the kernel', () => {
    expect(() => openInRoot(rootFd, '', O.RDONLY)).toThrow(InvalidArgumentError);
    expect(() => openInRoot(rootFd, 'etc/passwd\0/../../x', O.RDONLY)).toThrow(/NUL/);
    expect(() => mkdirInRoot(rootFd, '')).toThrow(InvalidArgumentError);
    expect(() => resolveInRoot(rootFd, 'a\0')).toThrow(InvalidArgumentError);
    expect(() => openRoot('')).toThrow(InvalidArgumentError);
    expect(() => openRoot(join(root, 'etc', 'passwd'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
  });

  it('openat2 with RESOLVE_BENEATH refuses instead of clamping', () => {
    expect(() => openat2(rootFd, '../x', { flags: O.PATH, resolve: RESOLVE.BENEATH })).toThrow(
      expect.objectContaining({ syscall: 'openat2', code: 'EXDEV', path: '../x' }),
    );
    expect(() => openat2(rootFd, '/etc/passwd', { flags: O.RDONLY, resolve: RESOLVE.BENEATH })).toThrow(
      /EXDEV/,
    );
    const fd = openat2(rootFd, 'etc/passwd', { flags: O.RDONLY, resolve: RESOLVE.BENEATH });
    try {
      expect(readFileSync(fd, 'utf8')).toMatch(/fake/);
      expect(statAt(fd, '', AT.EMPTY_PATH).size).toBeGreaterThan(0n);
    } finally {
      closeSync(fd);
    }
  });
});

describe('mkdirInRoot', () => {
  it('creates parents inside the root only', () => {
    link('../../outside', 'esc');
    link(outside, 'absesc');
    expect(() => mkdirInRoot(rootFd, 'esc/new', 0o755, { parents: true })).toThrow(/ENOENT/);
    expect(() => mkdirInRoot(rootFd, 'absesc/new', 0o755, { parents: true })).toThrow(/ENOENT/);
    mkdirSync(join(root, 'outside'));
    mkdirInRoot(rootFd, 'esc/new/deeper', 0o700, { parents: true });
    expect(statSync(join(root, 'outside', 'new', 'deeper')).isDirectory()).toBe(true);
    expect(statSync(join(root, 'outside', 'new', 'deeper')).mode & 0o777).toBe(0o700);
    mkdirInRoot(rootFd, 'x/../y/./z', 0o755, { parents: true });
    expect(existsSync(join(root, 'y', 'z'))).toBe(true);
    mkdirInRoot(rootFd, '/y/z', 0o755, { parents: true }); // exists: fine with parents
  });

  it('without parents behaves like mkdir(2) and names the path', () => {
    mkdirInRoot(rootFd, 'a/b/c');
    expect(statSync(join(root, 'a', 'b', 'c')).isDirectory()).toBe(true);
    expect(() => mkdirInRoot(rootFd, 'a/b/c')).toThrow(
      expect.objectContaining({ code: 'EEXIST', path: 'a/b/c' }),
    );
    expect(() => mkdirInRoot(rootFd, 'no/such/dir')).toThrow(/ENOENT/);
    writeFileSync(join(root, 'file'), '');
    expect(() => mkdirInRoot(rootFd, 'file', 0o755, { parents: true })).toThrow(/ENOTDIR/);
    // A symlink as the last component is never followed by mkdir.
    link('../../outside/made', 'dangling');
    expect(() => mkdirInRoot(rootFd, 'dangling')).toThrow(/EEXIST/);
  });
});

describe('*at() calls', () => {
  it('create, inspect and remove entries relative to a directory fd', () => {
    const dirFd = openInRoot(rootFd, 'a', O.PATH | O.DIRECTORY);
    try {
      mkdirat(dirFd, 'd', 0o750);
      expect(statSync(join(root, 'a', 'd')).mode & 0o777).toBe(0o750);
      symlinkat('d', dirFd, 'ln');
      expect(readlinkat(dirFd, 'ln')).toBe('d');
      expect(readlinkSync(join(root, 'a', 'ln'))).toBe('d');
      mknodat(dirFd, 'fifo', S_IF.FIFO | 0o600);
      expect(lstatSync(join(root, 'a', 'fifo')).isFIFO()).toBe(true);
      mknodat(dirFd, 'null', S_IF.CHR | 0o666, makedev(1, 3));
      const st = statAt(dirFd, 'null', AT.SYMLINK_NOFOLLOW);
      expect(st).toMatchObject({ rdevMajor: 1, rdevMinor: 3 });
      expect(lstatSync(join(root, 'a', 'null')).rdev).toBe(Number(makedev(1, 3)));
      fchownat(dirFd, 'd', 1234, 5678);
      expect(statSync(join(root, 'a', 'd'))).toMatchObject({ uid: 1234, gid: 5678 });
      fchownat(dirFd, 'ln', 42, 43, AT.SYMLINK_NOFOLLOW);
      expect(lstatSync(join(root, 'a', 'ln'))).toMatchObject({ uid: 42, gid: 43 });
      expect(statSync(join(root, 'a', 'd')).uid).toBe(1234);
      fchmodat(dirFd, 'd', 0o1777);
      expect(statSync(join(root, 'a', 'd')).mode & 0o7777).toBe(0o1777);
      unlinkat(dirFd, 'ln');
      unlinkat(dirFd, 'd', AT.REMOVEDIR);
      expect(() => unlinkat(dirFd, 'd', AT.REMOVEDIR)).toThrow(
        expect.objectContaining({ syscall: 'unlinkat', code: 'ENOENT', path: 'd' }),
      );
      expect(() => mkdirat(dirFd, '')).toThrow(InvalidArgumentError);
      expect(() => symlinkat('x\0', dirFd, 'y')).toThrow(InvalidArgumentError);
      expect(statAt(rootFd, '', AT.EMPTY_PATH).mountRoot).toBe(false);
    } finally {
      closeQuietly(dirFd);
    }
  });
});

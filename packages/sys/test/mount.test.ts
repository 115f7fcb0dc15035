import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../tools/test/fuzz.js';
import { AT, MNT, MOUNT_ATTR, MOVE_MOUNT, MS, OPEN_TREE } from '../src/constants.js';
import { SdError, SyscallError } from '../src/errors.js';
import { closeQuietly } from '../src/fd/fd.js';
import {
  attachMount,
  FSCONFIG,
  fsconfig,
  fsmount,
  fsopen,
  mount,
  mountFs,
  mountSetattr,
  moveMount,
  openTree,
  pivotRoot,
  umount,
} from '../src/mount/mount.js';
import {
  escapeMountInfo,
  isMountPoint,
  MountInfoError,
  mountsUnder,
  parseMountInfo,
  parseMountInfoLine,
  readMountInfo,
  umountTree,
  unescapeMountInfo,
} from '../src/mount/mountinfo.js';
import { createUserNamespaceFd, formatIdMap } from '../src/mount/userns.js';

// Integration tests as root on the host mount namespace: everything is
// mounted below a fresh directory in /tmp and unmounted again, also on failure.

let base: string;
let n = 0;
/** A fresh empty directory below the test's base. */
function dir(name = 'd'): string {
  const d = join(base, `${name}${n++}`);
  mkdirSync(d);
  return d;
}

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'sd-mount-test-'));
});
afterEach(() => {
  umountTree(base, { detach: true });
});
afterAll(() => {
  umountTree(base, { detach: true });
  rmSync(base, { recursive: true, force: true });
});

describe('mount(2) and umount2(2)', () => {
  it('mounts a tmpfs, remounts it read-only, unmounts it', () => {
    const d = dir('tmpfs');
    expect(isMountPoint(d)).toBe(false);
    mount('sd-test', d, 'tmpfs', MS.NOSUID | MS.NODEV, 'size=1m,mode=0700');
    expect(isMountPoint(d)).toBe(true);
    const [m, ...rest] = mountsUnder(d);
    expect(rest).toEqual([]);
    expect(m).toMatchObject({ mountPoint: d, fsType: 'tmpfs', source: 'sd-test', root: '/' });
    expect(m!.mountOptions).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev']));
    expect(m!.superOptions).toEqual(expect.arrayContaining(['size=1024k', 'mode=700']));
    writeFileSync(join(d, 'f'), 'hello');

    mount(null, d, null, MS.REMOUNT | MS.BIND | MS.RDONLY | MS.NOSUID | MS.NODEV);
    expect(mountsUnder(d)[0]!.mountOptions).toContain('ro');
    expect(() => writeFileSync(join(d, 'g'), 'x')).toThrow(/EROFS/);
    expect(readFileSync(join(d, 'f'), 'utf8')).toBe('hello');

    umount(d);
    expect(isMountPoint(d)).toBe(false);
    expect(existsSync(join(d, 'f'))).toBe(false);
  });

  it('bind-mounts a directory and detaches it lazily while a file in it is open', () => {
    const src = dir('src');
    const dst = dir('dst');
    writeFileSync(join(src, 'f'), 'bound');
    mount(src, dst, null, MS.BIND);
    expect(readFileSync(join(dst, 'f'), 'utf8')).toBe('bound');
    expect(mountsUnder(dst)[0]).toMatchObject({ root: src, mountPoint: dst });
    // An fd on the mount keeps it busy for a plain umount, not for MNT_DETACH.
    const fd = openTree(AT.FDCWD, dst, 0);
    try {
      expect(() => umount(dst)).toThrow(expect.objectContaining({ code: 'EBUSY', path: dst }));
      umount(dst, MNT.DETACH);
      expect(isMountPoint(dst)).toBe(false);
    } finally {
      closeQuietly(fd);
    }
  });

  it('names the target and errno in errors, and refuses NUL bytes', () => {
    const missing = join(base, 'missing');
    let err: unknown;
    try {
      mount('none', missing, 'tmpfs', 0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect(err).toMatchObject({ code: 'ENOENT', syscall: 'mount', path: missing });
    expect(() => umount(join(base, 'not-mounted'))).toThrow(SyscallError);
    expect(() => mount('none', 'a\0b', 'tmpfs', 0)).toThrow(/NUL/);
    expect(() => umount('')).toThrow(SdError);
  });

  it('validates pivot_root arguments without calling it on the host', () => {
    // Never let pivot_root reach the kernel here: on the host namespace a
    // success would move the root of every process on the machine.
    expect(() => pivotRoot('a\0b', '.')).toThrow(/NUL/);
    expect(() => pivotRoot('/x', '')).toThrow(SdError);
  });
});

describe('new mount API', () => {
  it('clones a tree with open_tree and attaches it with move_mount', () => {
    const src = dir('src');
    const dst = dir('dst');
    const inner = join(src, 'inner');
    mkdirSync(inner);
    mount('inner', inner, 'tmpfs', 0);
    writeFileSync(join(inner, 'f'), 'sub');
    const fd = openTree(AT.FDCWD, src, OPEN_TREE.CLONE | AT.RECURSIVE);
    try {
      expect(isMountPoint(dst)).toBe(false); // detached until moved
      mountSetattr(fd, '', AT.EMPTY_PATH | AT.RECURSIVE, { set: MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOEXEC });
      moveMount(fd, '', AT.FDCWD, dst, MOVE_MOUNT.F_EMPTY_PATH);
    } finally {
      closeQuietly(fd);
    }
    expect(readFileSync(join(dst, 'inner', 'f'), 'utf8')).toBe('sub');
    const mounts = mountsUnder(dst);
    expect(mounts.map((m) => m.mountPoint)).toEqual([dst, join(dst, 'inner')]);
    for (const m of mounts) expect(m.mountOptions).toEqual(expect.arrayContaining(['ro', 'noexec']));
    expect(() => writeFileSync(join(dst, 'inner', 'g'), 'x')).toThrow(/EROFS/);
    // The source stays writable: the attributes belong to the clone.
    writeFileSync(join(inner, 'g'), 'x');

    // Moving an attached mount elsewhere.
    const moved = dir('moved');
    moveMount(AT.FDCWD, dst, AT.FDCWD, moved, 0);
    expect(isMountPoint(dst)).toBe(false);
    expect(readFileSync(join(moved, 'inner', 'g'), 'utf8')).toBe('x');
    expect(umountTree(moved)).toBe(2);
    expect(umountTree(src)).toBe(1);
  });

  it('makes a tmpfs with fsopen/fsconfig/fsmount', () => {
    const d = dir('fs');
    const fsFd = fsopen('tmpfs');
    let mfd = -1;
    try {
      fsconfig(fsFd, FSCONFIG.SET_STRING, 'source', 'sd-fsmount');
      fsconfig(fsFd, FSCONFIG.SET_STRING, 'size', '2m');
      fsconfig(fsFd, FSCONFIG.SET_STRING, 'mode', '0711');
      fsconfig(fsFd, FSCONFIG.CMD_CREATE);
      mfd = fsmount(fsFd, 0, MOUNT_ATTR.NOSUID | MOUNT_ATTR.NODEV);
      attachMount(mfd, d);
    } finally {
      closeQuietly(fsFd, mfd);
    }
    const [m] = mountsUnder(d);
    expect(m).toMatchObject({ fsType: 'tmpfs', source: 'sd-fsmount' });
    expect(m!.mountOptions).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    expect(m!.superOptions).toEqual(expect.arrayContaining(['size=2048k', 'mode=711']));
    expect(statSync(d).mode & 0o7777).toBe(0o711);
    umount(d);
  });

  it('mountFs() reports the file system’s own complaint', () => {
    expect(() => mountFs('tmpfs', { 'no-such-option': 'x' })).toThrow(
      /fsconfig 'no-such-option'.*EINVAL.*Unknown parameter/,
    );
    expect(() => fsopen('no-such-fs')).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    const d = dir('fs');
    const fd = mountFs('tmpfs', { size: '1m' }, MOUNT_ATTR.RDONLY);
    try {
      attachMount(fd, d);
    } finally {
      closeQuietly(fd);
    }
    expect(mountsUnder(d)[0]!.mountOptions).toContain('ro');
    umount(d);
  });
});

describe('idmapped mounts', () => {
  it('creates a user namespace fd without changing this process', async () => {
    const before = readFileSync('/proc/self/uid_map', 'utf8');
    const ownNs = statSync('/proc/self/ns/user').ino;
    const fd = await createUserNamespaceFd([{ inside: 0, outside: 200000, count: 1000 }]);
    try {
      const st = statSync(`/proc/self/fd/${fd}`);
      expect(st.ino).not.toBe(ownNs);
      expect(readFileSync('/proc/self/uid_map', 'utf8')).toBe(before);
    } finally {
      closeQuietly(fd);
    }
    expect(() => formatIdMap([])).toThrow(SdError);
    expect(() => formatIdMap([{ inside: 0, outside: -1, count: 1 }])).toThrow(/outside/);
  });

  it('shows files with shifted owners through an idmapped bind mount', async () => {
    const src = dir('src');
    const dst = dir('dst');
    writeFileSync(join(src, 'root-file'), 'r');
    writeFileSync(join(src, 'user-file'), 'u');
    chownSync(join(src, 'user-file'), 1000, 1001);
    const userns = await createUserNamespaceFd(
      [{ inside: 0, outside: 100000, count: 65536 }],
      [{ inside: 0, outside: 300000, count: 65536 }],
    );
    const tree = openTree(AT.FDCWD, src, OPEN_TREE.CLONE);
    try {
      mountSetattr(tree, '', AT.EMPTY_PATH, { set: MOUNT_ATTR.IDMAP, usernsFd: userns });
      attachMount(tree, dst);
    } finally {
      closeQuietly(tree, userns);
    }
    expect(mountsUnder(dst)[0]!.mountOptions).toContain('idmapped');
    expect(statSync(join(dst, 'root-file'))).toMatchObject({ uid: 100000, gid: 300000 });
    expect(statSync(join(dst, 'user-file'))).toMatchObject({ uid: 101000, gid: 301001 });
    // Writes through the mount are mapped back: host uid 100000 is 0 on disk.
    chownSync(join(dst, 'root-file'), 100005, 300007);
    expect(statSync(join(src, 'root-file'))).toMatchObject({ uid: 5, gid: 7 });
    expect(statSync(join(src, 'user-file'))).toMatchObject({ uid: 1000, gid: 1001 });
    umount(dst);
  });
});

describe('mountinfo', () => {
  const line = '36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue';

  it('parses a line with optional fields and escapes', () => {
    expect(parseMountInfoLine(line)).toEqual({
      mountId: 36,
      parentId: 35,
      major: 98,
      minor: 0,
      root: '/mnt1',
      mountPoint: '/mnt 2',
      mountOptions: ['rw', 'noatime'],
      optionalFields: ['master:1', 'shared:7'],
      fsType: 'ext3',
      source: '/dev/root',
      superOptions: ['rw', 'errors=continue'],
    });
    expect(unescapeMountInfo('a\\011b\\012c\\134d\\303\\251')).toBe('a\tb\nc\\dé');
  });

  it('parses this process’s mountinfo and finds a mount with an escaped name', () => {
    expect(readMountInfo().some((m) => m.mountPoint === '/')).toBe(true);
    const d = join(base, 'with space\tand\\backslash é');
    mkdirSync(d);
    mount('src with space', d, 'tmpfs', 0);
    const [m] = mountsUnder(d);
    expect(m).toMatchObject({ mountPoint: d, source: 'src with space' });
    expect(isMountPoint(d)).toBe(true);
    umount(d);
  });

  it('throws a MountInfoError naming the line for malformed text', () => {
    expect(() => parseMountInfo(`${line}\nnonsense`)).toThrow(/mountinfo line 2/);
    expect(() => parseMountInfoLine('1 2 x:y / / rw - a b c')).toThrow(MountInfoError);
    expect(() => parseMountInfoLine('1 2 3:4 / / rw - a b')).toThrow(MountInfoError);
  });

  it('never throws anything but an SdError on arbitrary lines', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.string(),
            fc.string({ unit: 'binary' }),
            fc.constantFrom('-', ' ', '\\', '\\377', '1:2', '12'),
          ),
        ),
        (parts) => {
          const text = parts.join(' ');
          try {
            parseMountInfo(text);
          } catch (e) {
            if (!(e instanceof MountInfoError) || !(e instanceof SdError)) throw e;
          }
        },
      ),
      { numRuns: fuzzRuns(2000) },
    );
  });

  it('round-trips escaped paths', () => {
    const path = fc
      .string({
        unit: fc.oneof(
          fc.constantFrom(' ', '\t', '\n', '\\', '/', 'é', '\\040'),
          fc.string({ unit: 'grapheme', maxLength: 3 }),
        ),
      })
      .filter((s) => s.length > 0);
    fc.assert(
      fc.property(path, path, path, (root, mp, source) => {
        const text = `1 2 3:4 ${escapeMountInfo(root)} ${escapeMountInfo(mp)} rw shared:1 - tmpfs ${escapeMountInfo(source)} rw\n`;
        const [m] = parseMountInfo(text);
        expect(m).toMatchObject({ root, mountPoint: mp, source, optionalFields: ['shared:1'] });
        expect(escapeMountInfo(mp)).not.toMatch(/[ \t\n]/);
      }),
      { numRuns: fuzzRuns(1000) },
    );
  });
});

import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lchownSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AT, O } from '../src/constants.js';
import { readDirFd } from '../src/copy/file.js';
import { copyTree } from '../src/copy/tree.js';
import { lsetxattr } from '../src/copy/xattr.js';
import { closeQuietly, openat } from '../src/fd/fd.js';
import { describeTree } from './helpers/describe-tree.js';

// copyTree against `cp -a` on the real kernel, as root: the copy must be the
// same tree down to modes (setuid, setgid, sticky, odd permission bits the
// umask would cut), owners, times, xattrs, ACLs and hard links — also where
// the copy leaves out the chown/chmod that would change nothing.

const base = mkdtempSync(join(tmpdir(), 'sys-copy-tree-'));
const src = join(base, 'src');

/** A POSIX ACL xattr value (version 2): [tag, perm, id?] entries in the kernel's order. */
function acl(entries: Array<[number, number, number?]>): Buffer {
  const b = Buffer.alloc(4 + 8 * entries.length);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + 8 * i);
    b.writeUInt16LE(perm, 6 + 8 * i);
    b.writeUInt32LE(id ?? 0xffffffff, 8 + 8 * i);
  });
  return b;
}
const [USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER] = [1, 2, 4, 8, 0x10, 0x20];

beforeAll(() => {
  mkdirSync(join(src, 'sub/deep'), { recursive: true });
  const files: Array<[string, number, number?]> = [
    ['plain', 0o644],
    ['exec', 0o755],
    ['group-write', 0o664],
    ['other-write', 0o666],
    ['private', 0o600],
    ['setuid', 0o4755, 1000],
    ['setgid', 0o2755, 0],
    ['sticky-odd', 0o1707],
    ['none', 0o000],
    ['sub/owned', 0o640, 1234],
    ['sub/deep/big', 0o644],
  ];
  for (const [name, mode, owner] of files) {
    writeFileSync(join(src, name), name === 'sub/deep/big' ? Buffer.alloc(3 << 20, 7) : `${name}\n`);
    if (owner !== undefined) chownSync(join(src, name), owner, owner + 1);
    chmodSync(join(src, name), mode);
  }
  writeFileSync(join(src, 'empty'), '');
  linkSync(join(src, 'plain'), join(src, 'sub/hard'));
  symlinkSync('../plain', join(src, 'sub/link'));
  symlinkSync('/nowhere', join(src, 'dangling'));
  lchownSync(join(src, 'dangling'), 77, 78);
  execFileSync('mkfifo', ['-m', '0620', join(src, 'fifo')]);
  lsetxattr(join(src, 'plain'), 'user.one', Buffer.from('1'));
  lsetxattr(join(src, 'sub'), 'user.dir', Buffer.from('d'));
  // A setgid directory of another group, an ACL and a default ACL.
  mkdirSync(join(src, 'shared'));
  chownSync(join(src, 'shared'), 0, 4321);
  chmodSync(join(src, 'shared'), 0o2775);
  writeFileSync(join(src, 'shared/in'), 'x');
  chownSync(join(src, 'shared/in'), 0, 4321);
  lsetxattr(
    join(src, 'exec'),
    'system.posix_acl_access',
    acl([
      [USER_OBJ, 7],
      [USER, 7, 1000],
      [GROUP_OBJ, 5],
      [MASK, 7],
      [OTHER, 5],
    ]),
  );
  lsetxattr(
    join(src, 'shared'),
    'system.posix_acl_default',
    acl([
      [USER_OBJ, 7],
      [GROUP_OBJ, 7],
      [GROUP, 5, 1000],
      [MASK, 7],
      [OTHER, 5],
    ]),
  );
  chmodSync(join(src, 'sub/deep'), 0o700);
  chmodSync(join(src, 'sub'), 0o1777);
  utimesSync(join(src, 'plain'), 1_000_000, 2_000_000);
  utimesSync(join(src, 'sub'), 3_000_000, 4_000_000);
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('copyTree', () => {
  it('copies a tree exactly as cp -a does', async () => {
    execFileSync('cp', ['-a', src, join(base, 'by-cp')]);
    const stats = await copyTree(src, join(base, 'ours'));
    const want = describeTree(join(base, 'by-cp'));
    const got = describeTree(join(base, 'ours'));
    expect(got.entries).toBe(want.entries);
    expect(got.xattrs).toBe(want.xattrs);
    expect(got.xattrs).toContain('system.posix_acl_default');
    expect(stats.hardlinks).toBe(1);
    execFileSync('diff', ['-r', '--no-dereference', '-x', 'fifo', src, join(base, 'ours')]);
  });

  it('sets every mode and owner below a setgid directory with a default ACL, and under another umask', async () => {
    // New entries there get the directory's group and modes from the ACL, not from the umask.
    const parent = join(base, 'acl-parent');
    mkdirSync(parent);
    chownSync(parent, 0, 5555);
    chmodSync(parent, 0o2777);
    lsetxattr(
      parent,
      'system.posix_acl_default',
      acl([
        [USER_OBJ, 7],
        [GROUP_OBJ, 7],
        [OTHER, 7],
      ]),
    );
    await copyTree(src, join(parent, 'ours'));
    // (Directories made there also inherit its default ACL, as they would with cp: only modes and owners compare.)
    expect(describeTree(join(parent, 'ours')).entries).toBe(describeTree(src).entries);
    const old = process.umask(0o077);
    try {
      await copyTree(src, join(base, 'umask'));
    } finally {
      process.umask(old);
    }
    expect(describeTree(join(base, 'umask'))).toEqual(describeTree(src));
  });
});

describe('readDirFd', () => {
  it('lists every name but . and .., and refuses a name that is not UTF-8 (naming it)', () => {
    const dir = join(base, 'names');
    mkdirSync(dir);
    for (const n of ['.hidden', '..dots', '.', 'a', 'é', '.x.'])
      if (n !== '.') writeFileSync(join(dir, n), '');
    let fd = openat(AT.FDCWD, dir, O.RDONLY | O.DIRECTORY);
    try {
      expect(
        readDirFd(fd, dir)
          .map((e) => e.name)
          .sort(),
      ).toEqual(['..dots', '.hidden', '.x.', 'a', 'é']);
    } finally {
      closeQuietly(fd);
    }
    writeFileSync(Buffer.concat([Buffer.from(`${dir}/bad-`), Buffer.from([0xff, 0xfe])]), '');
    fd = openat(AT.FDCWD, dir, O.RDONLY | O.DIRECTORY);
    try {
      expect(() => readDirFd(fd, dir)).toThrow(/names\/bad-.*EILSEQ/);
    } finally {
      closeQuietly(fd);
    }
  });
});

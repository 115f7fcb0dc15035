import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopyHelper } from '../src/copy/helper.js';
import { removeTree } from '../src/copy/remove.js';
import { copyTree } from '../src/copy/tree.js';
import { lsetxattr } from '../src/copy/xattr.js';
import { describeTree } from './helpers/describe-tree.js';

// copyTree with its helper process, on the real kernel, as root: the copy
// equals `cp -a`'s also when subtrees went to the helper — hard links whose
// names are on both sides, xattrs, odd modes and owners — and a failure in
// either process stops the helper before copyTree throws, so that the
// caller's removal leaves nothing behind.

const base = mkdtempSync(join(tmpdir(), 'copy3-parallel-'));
const src = join(base, 'src');
const small = join(base, 'small');

/** Whether process `pid` still exists (not even as a zombie). */
const running = (pid: number) => existsSync(`/proc/${pid}`);

beforeAll(() => {
  // Eight subtrees, each a candidate for the helper; one inode linked from all of them.
  writeFileSync(join(src, '..', 'seed'), 'x');
  mkdirSync(src);
  for (let t = 0; t < 8; t++) {
    const dir = join(src, `t${t}`, 'inner');
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 40; f++) {
      const p = join(dir, `f${f}`);
      writeFileSync(p, `${t}/${f}\n`.repeat(f));
      chmodSync(p, [0o644, 0o4755, 0o2711, 0o1600, 0o000, 0o666][f % 6]!);
      if (f % 5 === 0) chownSync(p, 1000 + t, 2000 + f);
      if (f % 7 === 0) lsetxattr(p, 'user.copy3', Buffer.from(`${t}.${f}`));
    }
    symlinkSync('inner/f1', join(src, `t${t}`, 'link'));
    writeFileSync(join(src, `t${t}`, 'big'), Buffer.alloc(512 * 1024, t));
    if (t === 0) writeFileSync(join(src, 'shared'), 'shared by every subtree\n');
    linkSync(join(src, 'shared'), join(src, `t${t}`, 'inner', 'shared'));
    // A second group, linked within each subtree only.
    linkSync(join(dir, 'f3'), join(dir, 'f3-again'));
    chownSync(join(src, `t${t}`), 300 + t, 400);
    chmodSync(join(src, `t${t}`), 0o2750);
    lsetxattr(join(src, `t${t}`), 'user.dir', Buffer.from(`t${t}`));
    utimesSync(join(src, `t${t}`, 'inner'), 5_000_000 + t, 6_000_000 + t);
    utimesSync(join(src, `t${t}`), 7_000_000 + t, 8_000_000 + t);
  }
  chmodSync(join(src, 't3', 'inner'), 0o555);
  // A tree to fill a small file system with.
  mkdirSync(join(small, 'helper', 'sub'), { recursive: true });
  mkdirSync(join(small, 'parent', 'sub'), { recursive: true });
  for (let f = 0; f < 200; f++) writeFileSync(join(small, 'helper', 'sub', `f${f}`), `${f}`);
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('copyTree with a helper process', () => {
  it('copies a tree exactly as cp -a does, hard links across subtrees included', async () => {
    execFileSync('cp', ['-a', src, join(base, 'by-cp')]);
    const helper = await CopyHelper.start([], { ignoreLoad: true });
    try {
      const serial = await copyTree(src, join(base, 'serial'));
      const stats = await copyTree(src, join(base, 'ours'), { parallel: helper });
      // Subtrees went to the helper (jobs besides the final one), and the counts add up as in one process.
      expect(helper.jobs).toBeGreaterThan(2);
      expect(stats).toEqual(serial);
      const want = describeTree(join(base, 'by-cp'));
      const got = describeTree(join(base, 'ours'));
      expect(got.entries).toBe(want.entries);
      expect(got.xattrs).toBe(want.xattrs);
      // One inode for the nine names of `shared`, whichever process copied them.
      const inodes = new Set(
        [0, 1, 2, 3, 4, 5, 6, 7].map((t) => statSync(join(base, 'ours', `t${t}/inner/shared`)).ino),
      );
      inodes.add(statSync(join(base, 'ours', 'shared')).ino);
      expect(inodes.size).toBe(1);
      expect(statSync(join(base, 'ours', 'shared')).nlink).toBe(9);
      execFileSync('diff', ['-r', '--no-dereference', src, join(base, 'ours')]);
      // No temporary name of the last pass is left.
      expect(execFileSync('find', [join(base, 'ours'), '-name', '.#*']).toString()).toBe('');
    } finally {
      helper.stop();
    }
  });

  describe('on a full file system', () => {
    const fs = join(base, 'fs');
    beforeAll(() => {
      mkdirSync(fs);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'copy3-par', fs]);
    });
    afterAll(() => execFileSync('umount', [fs]));

    for (const side of ['helper', 'parent'] as const)
      it(`stops the helper when the copy fails in the ${side}, and the caller's removal leaves nothing`, async () => {
        const big = join(small, side, 'sub', 'big');
        writeFileSync(big, Buffer.alloc(2 << 20, 1));
        const helper = await CopyHelper.start([], { ignoreLoad: true });
        const dst = join(fs, 'copy');
        try {
          // 'helper/sub' only to the helper, never 'parent/…': the 2 MiB file fails there.
          const offloadable = (p: string) => p.startsWith(join(small, 'helper'));
          const err = await copyTree(small, dst, { parallel: helper, offloadable }).catch((e: unknown) => e);
          expect(String(err)).toMatch(/ENOSPC/);
          expect(helper.alive).toBe(false);
          expect(running(helper.pid)).toBe(false);
          removeTree(dst);
          await new Promise((r) => setTimeout(r, 200));
          expect(readdirSync(fs)).toEqual([]);
        } finally {
          helper.stop();
          rmSync(big);
        }
      });
  });
});

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopyHelper } from '../src/copy/helper.js';
import { removeTree } from '../src/copy/remove.js';
import { copyTree } from '../src/copy/tree.js';
import {
  Attacker,
  inspect,
  makeCanary,
  makeDecoys,
  makeTree,
  type RaceRun,
  type RaceTree,
  report,
  runRace,
  snapshot,
  swapper,
  swapsOf,
  targetDirs,
} from './gap-race-lib.js';

// The parallel copyTree against whoever owns the source tree (an image's
// owner, root in a container whose tree is cloned), on the real kernel, as
// root: while copies run, with subtrees handed to the copy helper as fds, a
// process of its own swaps directories for links to the host (absolute,
// relative, /etc), directories and files for FIFOs and /dev/zero nodes, and
// swaps them back. Whatever it hits, no host file and no device's or
// FIFO's data reaches the copy, nothing is written on the host, and no copy
// hangs (the host's canary is compared whole, its files' atimes too: a
// read shows even when the copy then failed). The tree is on a small
// tmpfs of its own: a copy that read /dev/zero stops at ENOSPC. A second
// case wins the race at the exact point instead of by chance: each
// directory swapped as it is handed to the helper.
//
// The defences these catch when removed (tried): tree-walk.ts copyDir's
// O_NOFOLLOW on a directory's open, copyFile's isSameRegularFile check
// after a file's open, tree.ts joinHelper's times read from the copy (not
// the source by path), tree-jobs.ts working on the fds it was passed.

const base = mkdtempSync(join(tmpdir(), 'gap-race-'));
const fs = join(base, 'fs');
const host = join(base, 'host');
const src = join(fs, 'src');
const dst = join(fs, 'dst');
const relHost = `../../../../../../../../../../../..${host}`;
const links = [host, '/etc', relHost];
let tree: RaceTree;
let attacker: Attacker | undefined;
let hostBefore: string;
let srcBefore: string;

beforeAll(() => {
  mkdirSync(fs);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0755', 'gap-race', fs]);
  makeCanary(host);
  tree = makeTree(src);
  const decoys = makeDecoys(join(fs, 'stash'), links);
  hostBefore = snapshot(host);
  srcBefore = snapshot(src, false);
  attacker = new Attacker({ dirs: targetDirs(tree), files: tree.files, ...decoys });
});

afterAll(async () => {
  await attacker?.stop();
  try {
    execFileSync('umount', [fs]);
  } catch {}
  rmSync(base, { recursive: true, force: true });
});

describe('copyTree with its helper under a swapping attacker', () => {
  it('copies nothing of the host, no FIFO or device data, writes nothing outside, never hangs', async () => {
    let helper: CopyHelper | undefined;
    let jobs = 0;
    let r: RaceRun;
    try {
      r = await runRace({
        attacker: attacker!,
        maxCopies: 150,
        budgetMs: 40_000,
        // A failed copy kills its helper: a new one for the next.
        before: async () => {
          if (helper?.alive) return;
          jobs += helper?.jobs ?? 0;
          helper?.stop();
          helper = await CopyHelper.start([], { ignoreLoad: true });
        },
        copy: () => copyTree(src, dst, { parallel: helper }),
        dst,
        links,
        clean: () => {
          if (existsSync(dst)) removeTree(dst);
        },
      });
    } finally {
      jobs += helper?.jobs ?? 0;
      helper?.stop();
    }
    console.log(report('gap-copy-race', r, jobs));
    // The race was run: the attacker swapped while copies ran, the copies met swaps, the helper worked.
    expect(swapsOf(r.counts)).toBeGreaterThan(0);
    expect(r.seen).toBeGreaterThan(0);
    expect(jobs).toBeGreaterThan(r.copies);
    expect(r.leaks).toEqual([]);
    // No copy hung (a FIFO opened blocking is released by the attacker, with data that shows above).
    expect(r.slowestMs).toBeLessThan(15_000);
    // Nothing was written on the host: the canary and /etc are as they were.
    expect(snapshot(host)).toBe(hostBefore);
    expect(readdirSync('/etc').filter((n) => n.startsWith('gap'))).toEqual([]);
    // The attacker left the source whole (the test's own sanity).
    expect(snapshot(src, false)).toBe(srcBefore);
  }, 90_000);

  it('a directory swapped for a link to the host as it is handed to the helper: the helper copies what was opened', async () => {
    // The exact point: `offloadable` runs once the walk has the directory open, before the job is sent;
    // it stays swapped while the job waits in the helper and while it runs.
    const src2 = join(fs, 'src2');
    makeTree(src2, 8, 2);
    const before = snapshot(src2, false);
    const dst2 = join(fs, 'dst2');
    const s = swapper(join(fs, 'swaps'), host);
    const helper = await CopyHelper.start([], { ignoreLoad: true });
    try {
      await copyTree(src2, dst2, {
        parallel: helper,
        offloadable: (p) => {
          // Not below one swapped already (its name leads to the host now).
          if (!s.swapped.some((q) => p.startsWith(`${q}/`))) s.swap(p);
          return true;
        },
      });
      expect(helper.jobs).toBeGreaterThan(1);
      expect(s.swapped.length).toBeGreaterThan(1);
      // Each swapped directory copied as it was, wherever its name led meanwhile.
      for (const p of s.swapped) {
        const copy = join(dst2, p.slice(src2.length));
        expect(snapshot(copy, false).split('\n').slice(0, -1)).toEqual(
          snapshot(s.movedTo(p), false).split('\n').slice(0, -1),
        );
      }
      expect(inspect(dst2, links).leaks).toEqual([]);
      expect(snapshot(host)).toBe(hostBefore);
    } finally {
      helper.stop();
      s.restore();
    }
    expect(snapshot(src2, false)).toBe(before);
  }, 60_000);
});

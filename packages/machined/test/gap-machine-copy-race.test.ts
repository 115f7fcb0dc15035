import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CopyHelper, closeQuietly, openRoot, releaseCopyHelper, stopCopyHelpers } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
} from '../../sys/test/gap-race-lib.js';
import { cloneImage } from '../src/images/clone.js';
import type { ImageInfo } from '../src/images/types.js';
import { copyFromMachine, copyToMachine, idMapper } from '../src/transfer/copy.js';
import { COPY_JOBS_MODULE } from '../src/transfer/copy-jobs.js';

// machined's copies with the copy helper against whoever owns one side, on
// the real kernel, as root — the library calls the worker makes for
// CopyFromMachine (the machine's tree is the source), CopyToMachine (the
// machine's tree holds the destination being made) and CloneImage (the
// image's owner owns the source). While copies run, an attacker process
// (@sd/sys's test gap-race-attacker.mjs) swaps the machine's or image's
// directories and files for links to the host (absolute, relative, /etc),
// FIFOs and /dev/zero nodes, and the directories a copy into the machine
// just made for links to the host. Whatever it hits, nothing of the host
// reaches a copy, nothing is written on the host, no copy hangs. The
// machine and the pool are on a small tmpfs of their own.
//
// The defences these catch when removed (tried): copier.ts's O_NOFOLLOW
// on the open of a directory the copy just made (make()), of a directory
// it walks (children()) and of one it hands to the helper (offload()).

const base = mkdtempSync(join(tmpdir(), 'gap-mrace-'));
const fs = join(base, 'fs');
// The host's canary on the machine's file system, as /var/lib/machines often is on the host's: a walk
// that follows a link then meets it on the same file system (other file systems are not entered).
const host = join(fs, 'host');
const machine = join(fs, 'machine');
const relHost = `../../../../../../../../../../../..${host}`;
const links = [host, '/etc', relHost];
const identity = { identity: true as const };
let hostBefore: string;
const attackers: Attacker[] = [];

beforeAll(() => {
  mkdirSync(fs);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0755', 'gap-mrace', fs]);
  makeCanary(host);
  hostBefore = snapshot(host);
  mkdirSync(join(machine, 'in'), { recursive: true });
  mkdirSync(join(fs, 'out'));
});

afterAll(async () => {
  for (const a of attackers) await a.stop();
  stopCopyHelpers();
  try {
    execFileSync('umount', [fs]);
  } catch {}
  rmSync(base, { recursive: true, force: true });
});

function attack(config: ConstructorParameters<typeof Attacker>[0]): Attacker {
  const a = new Attacker(config);
  attackers.push(a);
  return a;
}

/** A machine copy's helper, started again when a failure killed the last one; its jobs summed. */
function helpers(modules: string[]) {
  let h: CopyHelper | undefined;
  let done = 0;
  return {
    get current() {
      return h!;
    },
    get jobs() {
      return done + (h?.jobs ?? 0);
    },
    async ensure(): Promise<CopyHelper | undefined> {
      if (h?.alive) return undefined;
      done += h?.jobs ?? 0;
      h?.stop();
      h = await CopyHelper.start(modules, { ignoreLoad: true });
      return h;
    },
    stop() {
      h?.stop();
    },
  };
}

/** The assertions every case makes: the race ran, and the attacker got nothing. */
function judge(name: string, r: RaceRun, jobs: number): void {
  console.log(report(name, r, jobs));
  expect(swapsOf(r.counts)).toBeGreaterThan(0);
  expect(r.seen).toBeGreaterThan(0);
  expect(jobs).toBeGreaterThan(0);
  expect(r.leaks).toEqual([]);
  expect(r.slowestMs).toBeLessThan(15_000);
  expect(snapshot(host)).toBe(hostBefore);
  expect(readdirSync('/etc').filter((n) => n.startsWith('gap'))).toEqual([]);
}

async function machineCopy(
  direction: 'to' | 'from',
  helper: CopyHelper,
  source: string,
  dest: string,
  offloadable?: (path: string) => boolean,
) {
  const rootFd = openRoot(machine);
  const opts = {
    replace: false,
    mapId: idMapper(identity),
    idMap: identity,
    offloadable,
    helper: { acquire: async () => helper, release: () => {} },
  };
  try {
    if (direction === 'to') await copyToMachine(rootFd, source, dest, opts);
    else await copyFromMachine(rootFd, source, dest, opts);
  } finally {
    closeQuietly(rootFd);
  }
}

describe('machine copies with the copy helper under a swapping attacker', () => {
  it('CopyFromMachine: the machine swaps its tree while it is copied out', async () => {
    // Many small tops: more of them go to the helper, each opened again by name for it.
    const tree: RaceTree = makeTree(join(machine, 'srv', 'tree'), 24, 3);
    const decoys = makeDecoys(join(machine, 'stash'), links);
    // Two device nodes, not eight: a device met by the walk is refused (EOPNOTSUPP), ending the copy.
    const a = attack({ dirs: targetDirs(tree), files: tree.files, ...decoys, devs: decoys.devs.slice(0, 2) });
    const h = helpers([COPY_JOBS_MODULE]);
    const dst = join(fs, 'out', 'copy');
    let r: RaceRun;
    try {
      r = await runRace({
        attacker: a,
        maxCopies: 100,
        budgetMs: 20_000,
        before: async () => void (await h.ensure()),
        copy: () => machineCopy('from', h.current, '/srv/tree', dst),
        dst,
        links,
        clean: () => rmSync(dst, { recursive: true, force: true }),
      });
    } finally {
      h.stop();
      await a.stop();
    }
    judge('gap-machine-copy-race from', r, h.jobs);
  }, 60_000);

  it('CopyFromMachine: a directory swapped for a link to the host around its handover to the helper', async () => {
    // The exact points, through `offloadable` (called before the walk opens a directory for the
    // helper): one directory swapped at the next one's offer, its job sent (waiting or running);
    // then one swapped at its own offer, after the walk's stat and before that open.
    makeTree(join(machine, 'srv', 'hand'), 8, 2);
    const before = snapshot(join(machine, 'srv', 'hand'), false);
    const isTop = (p: string) => p.split('/').length === 4; // /srv/hand/gapdN
    const helper = await CopyHelper.start([COPY_JOBS_MODULE], { ignoreLoad: true });
    const after = swapper(join(machine, 'swaps-after'), host);
    const between = swapper(join(machine, 'swaps-between'), host);
    const dst = join(fs, 'out', 'hand');
    try {
      let prev: string | undefined;
      await machineCopy('from', helper, '/srv/hand', dst, (p) => {
        if (!isTop(p)) return true;
        if (prev) after.swap(join(machine, prev));
        prev = p;
        return true;
      });
      expect(helper.jobs).toBeGreaterThan(1);
      expect(after.swapped.length).toBeGreaterThan(1);
      for (const p of after.swapped) {
        const copy = join(dst, p.slice(join(machine, 'srv', 'hand').length));
        expect(snapshot(copy, false).split('\n').slice(0, -1)).toEqual(
          snapshot(after.movedTo(p), false).split('\n').slice(0, -1),
        );
      }
      expect(inspect(dst, links).leaks).toEqual([]);
      after.restore();
      rmSync(dst, { recursive: true });

      const err = await machineCopy('from', helper, '/srv/hand', dst, (p) => {
        if (isTop(p) && between.swapped.length === 0) between.swap(join(machine, p));
        return true;
      }).catch((e: unknown) => e);
      expect(between.swapped.length).toBe(1);
      // The walk's open (O_NOFOLLOW) refuses the link; the copy fails and leaves nothing.
      expect(String((err as { code?: string })?.code ?? err)).toMatch(/ENOTDIR|ELOOP/);
      expect(readdirSync(join(fs, 'out'))).toEqual([]);
      expect(snapshot(host)).toBe(hostBefore);
    } finally {
      helper.stop();
      after.restore();
      between.restore();
    }
    expect(snapshot(join(machine, 'srv', 'hand'), false)).toBe(before);
  }, 60_000);

  it('CopyToMachine: the machine swaps the directories the copy makes in it', async () => {
    const src = join(fs, 'host-src');
    const tree = makeTree(src);
    // In the order of the directory listings (find's, unsorted): the order the copy makes them in.
    const rel = execFileSync('find', [src, '-mindepth', '1', '-type', 'd', '-printf', '%P\\n'])
      .toString()
      .trim()
      .split('\n');
    expect(rel.length).toBe(tree.dirs.length);
    const stash = join(machine, 'stash-to');
    mkdirSync(stash);
    // Not /etc here: a copy that wrote through a link (the defence removed) would write into the host's /etc.
    const dstLinks = [host, relHost].map((to, i) => ({ p: join(stash, `link${i}`), to }));
    const a = attack({
      dirs: [],
      files: [],
      links: [],
      fifos: [],
      devs: [],
      dst: { parent: join(machine, 'in'), prefix: '.#sd-copy-', dirs: rel, links: dstLinks },
    });
    const h = helpers([COPY_JOBS_MODULE]);
    const dst = join(machine, 'in', 'copy');
    let r: RaceRun;
    try {
      r = await runRace({
        attacker: a,
        maxCopies: 100,
        budgetMs: 20_000,
        before: async () => void (await h.ensure()),
        copy: () => machineCopy('to', h.current, src, '/in/copy'),
        dst,
        links,
        clean: () => {
          for (const n of readdirSync(join(machine, 'in')))
            rmSync(join(machine, 'in', n), { recursive: true });
        },
      });
    } finally {
      h.stop();
      await a.stop();
    }
    judge('gap-machine-copy-race to', r, h.jobs);
    expect(r.counts.dstLinks).toBeGreaterThan(0);
  }, 60_000);

  it('CloneImage: the image swaps its tree while it is cloned', async () => {
    const pool = join(fs, 'pool');
    const tree = makeTree(join(pool, 'gapimg'));
    const decoys = makeDecoys(join(fs, 'stash-img'), links);
    const a = attack({ dirs: targetDirs(tree), files: tree.files, ...decoys });
    const img: ImageInfo = {
      name: 'gapimg',
      path: join(pool, 'gapimg'),
      type: 'directory',
      readOnly: false,
      crtime: 0n,
      mtime: 0n,
      usage: 0n,
      usageExclusive: 0n,
      limit: 0n,
      limitExclusive: 0n,
    };
    // cloneImage takes the warm shared helper: one that works also on a loaded machine is put there.
    const h = helpers([]);
    const dst = join(pool, 'gapclone');
    let r: RaceRun;
    try {
      r = await runRace({
        attacker: a,
        maxCopies: 100,
        budgetMs: 20_000,
        before: async () => {
          const fresh = await h.ensure();
          if (fresh) releaseCopyHelper(fresh);
        },
        copy: () => cloneImage(img, 'gapclone', false, pool, true),
        dst,
        links,
        clean: () => rmSync(dst, { recursive: true, force: true }),
      });
    } finally {
      stopCopyHelpers();
      h.stop();
      await a.stop();
    }
    judge('gap-machine-copy-race clone', r, h.jobs);
    // A failed clone leaves no temporary tree in the pool.
    expect(readdirSync(pool).filter((n) => n.startsWith('.#'))).toEqual([]);
  }, 60_000);
});

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CopyHelper } from '../src/copy/helper.js';
import { removeTree } from '../src/copy/remove.js';
import { copyTree } from '../src/copy/tree.js';
import {
  type AttackCounts,
  Attacker,
  type Findings,
  inspect,
  makeCanary,
  makeDecoys,
  makeTree,
  type RaceTree,
  snapshot,
  swapsOf,
} from './gap-race-lib.js';

// The parallel copyTree against whoever owns the source tree (an image's
// owner, root in a container whose tree is cloned), on the real kernel, as
// root: while copies run, with subtrees handed to the copy helper as fds, a
// process of its own swaps directories for links to the host (absolute,
// relative, /etc), directories and files for FIFOs and /dev/zero nodes, and
// swaps them back. Whatever it hits, no host file and no device's or
// FIFO's data reaches the copy, nothing is written on the host, and no copy
// hangs. The tree is on a small tmpfs of its own: a copy that read
// /dev/zero stops at ENOSPC.

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
  attacker = new Attacker({ dirs: tree.dirs, files: tree.files, ...decoys });
});

afterAll(async () => {
  await attacker?.stop();
  try {
    execFileSync('umount', [fs]);
  } catch {}
  rmSync(base, { recursive: true, force: true });
});

/** One line of figures for the log: what the attacker did while the copies ran. */
function total(all: AttackCounts[]): AttackCounts {
  const t = { ...all[0]! };
  for (const c of all.slice(1)) for (const k of Object.keys(t) as Array<keyof AttackCounts>) t[k] += c[k];
  return t;
}

describe('copyTree with its helper under a swapping attacker', () => {
  it('copies nothing of the host, no FIFO or device data, writes nothing outside, never hangs', async () => {
    const counts: AttackCounts[] = [];
    const leaks: string[] = [];
    const errors = new Map<string, number>();
    let seen = 0;
    let jobs = 0;
    let copies = 0;
    let slowest = 0;
    let helper: CopyHelper | undefined;
    const started = Date.now();
    try {
      // Copies until 40 s or 150 copies; a failed copy kills its helper: a new one for the next.
      while (copies < 150 && Date.now() - started < 40_000) {
        if (!helper?.alive) {
          if (helper) jobs += helper.jobs;
          helper?.stop();
          helper = await CopyHelper.start([], { ignoreLoad: true });
        }
        const h = helper;
        const t0 = Date.now();
        const { result, counts: c } = await attacker!.during(() =>
          copyTree(src, dst, { parallel: h }).then(
            () => 'ok',
            (e: unknown) => String((e as { code?: string }).code ?? e),
          ),
        );
        slowest = Math.max(slowest, Date.now() - t0);
        copies++;
        counts.push(c);
        errors.set(result, (errors.get(result) ?? 0) + 1);
        const f: Findings = inspect(dst, links);
        seen += f.seen;
        leaks.push(...f.leaks);
        if (existsSync(dst)) removeTree(dst);
      }
    } finally {
      if (helper) jobs += helper.jobs;
      helper?.stop();
    }
    const t = total(counts);
    console.log(
      `gap-copy-race: ${copies} copies (${[...errors].map(([k, v]) => `${k}: ${v}`).join(', ')}), ` +
        `${jobs} helper jobs, slowest ${slowest} ms; swaps during the copies: ${swapsOf(t)} ` +
        `(dir->link ${t.dirLinks}, dir->special ${t.dirSpecials}, file->fifo ${t.fileFifos}, ` +
        `file->/dev/zero ${t.fileDevs}), FIFOs found open ${t.fifoReaders}; swaps the copies met: ${seen}`,
    );
    // The race was run: the attacker swapped while copies ran, the copies met swaps, the helper worked.
    expect(swapsOf(t)).toBeGreaterThan(0);
    expect(seen).toBeGreaterThan(0);
    expect(jobs).toBeGreaterThan(copies);
    expect(leaks).toEqual([]);
    // No copy hung (a FIFO opened blocking is released by the attacker, with data that shows above).
    expect(slowest).toBeLessThan(15_000);
    // Nothing was written on the host: the canary and /etc are as they were.
    expect(snapshot(host)).toBe(hostBefore);
    expect(readdirSync('/etc').filter((n) => n.startsWith('gap'))).toEqual([]);
    // The attacker left the source whole (the test's own sanity).
    expect(snapshot(src, false)).toBe(srcBefore);
  }, 90_000);
});

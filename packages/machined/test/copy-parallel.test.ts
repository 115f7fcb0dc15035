import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CopyHelper, closeQuietly, openRoot } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CopyCancelledError,
  copyFromMachine,
  copyToMachine,
  type IdMapSpec,
  idMapper,
} from '../src/transfer/copy.js';
import { COPY_JOBS_MODULE } from '../src/transfer/copy-jobs.js';

// CopyToMachine / CopyFromMachine with the copy helper process, on the real
// kernel, as root (the library the worker runs): the same result as one
// process — modes, owners shifted by the machine's map in the helper too,
// times, contents — and a cancellation or a failure in either process
// leaves no temporary tree and no helper behind.

const base = mkdtempSync(join(tmpdir(), 'copy3-mcopy-'));
const src = join(base, 'src');
const machine = join(base, 'machine');
const shift: IdMapSpec = { direction: 'to', uids: [{ inside: 0, outside: 200_000, count: 65_536 }] };

/** Each entry's path, mode, owner, size, link target, and mtime (not of links and fifos: machine copies leave those). */
function describeTree(dir: string): string {
  const find = (...args: string[]) => execFileSync('find', ['.', ...args], { cwd: dir }).toString();
  return (
    find('(', '-type', 'l', '-o', '-type', 'p', ')', '-printf', '%P %M %U %G %s %l\\n') +
    find('!', '-type', 'l', '!', '-type', 'p', '-printf', '%P %M %U %G %s %T@\\n')
  )
    .split('\n')
    .sort()
    .join('\n');
}

const running = (pid: number) => existsSync(`/proc/${pid}`);

async function copy(
  direction: 'to' | 'from',
  source: string,
  dest: string,
  helper: CopyHelper | undefined,
  extra: {
    cancelled?: () => boolean;
    offloadable?: (p: string) => boolean;
    idMap?: IdMapSpec;
    creator?: { uid: number; gid: number };
  } = {},
): Promise<void> {
  const rootFd = openRoot(machine);
  const idMap = extra.idMap ?? { identity: true as const };
  const opts = {
    replace: false,
    mapId: idMapper(idMap),
    idMap,
    cancelled: extra.cancelled,
    offloadable: extra.offloadable,
    creator: extra.creator,
    helper: helper && { acquire: async () => helper, release: () => {} },
  };
  try {
    if (direction === 'to') await copyToMachine(rootFd, source, dest, opts);
    else await copyFromMachine(rootFd, source, dest, opts);
  } finally {
    closeQuietly(rootFd);
  }
}

beforeAll(() => {
  mkdirSync(machine);
  // The machine's root belongs to its (shifted) root, as a user-namespaced machine's.
  chownSync(machine, 200_000, 200_000);
  for (let t = 0; t < 8; t++) {
    const dir = join(src, `t${t}`, 'inner');
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 60; f++) {
      const p = join(dir, `f${f}`);
      writeFileSync(p, `${t}/${f}\n`.repeat(f));
      chmodSync(p, [0o644, 0o4755, 0o2711, 0o1600, 0o000, 0o666][f % 6]!);
      if (f % 5 === 0) chownSync(p, 1000 + t, 2000 + f);
    }
    symlinkSync('inner/f1', join(src, `t${t}`, 'link'));
    execFileSync('mkfifo', ['-m', '0640', join(src, `t${t}`, 'fifo')]);
    chownSync(join(src, `t${t}`), 300 + t, 400);
    chmodSync(join(src, `t${t}`), 0o2750);
    utimesSync(join(src, `t${t}`, 'inner'), 5_000_000 + t, 6_000_000 + t);
    utimesSync(join(src, `t${t}`), 7_000_000 + t, 8_000_000 + t);
  }
  chmodSync(join(src, 't3', 'inner'), 0o555);
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('machine copies with the copy helper', () => {
  it('copy into and out of a machine as one process would, owners shifted in the helper too', async () => {
    const helper = await CopyHelper.start([COPY_JOBS_MODULE], { ignoreLoad: true });
    try {
      // Created as the machine's root (fs ids), as into a user-namespaced machine.
      const creator = { uid: 200_000, gid: 200_000 };
      await copy('to', src, '/one', undefined, { idMap: shift, creator });
      await copy('to', src, '/two', helper, { idMap: shift, creator });
      expect(helper.jobs).toBeGreaterThan(0);
      expect(describeTree(join(machine, 'two'))).toBe(describeTree(join(machine, 'one')));
      // Shifted: the source's 1000+t is 201000+t inside.
      expect(describeTree(join(machine, 'two'))).toMatch(/ 201000 /);
      const jobs = helper.jobs;
      await copy('from', '/two', join(base, 'back'), helper);
      expect(helper.jobs).toBeGreaterThan(jobs);
      expect(describeTree(join(base, 'back'))).toBe(describeTree(join(machine, 'one')));
      execFileSync('diff', ['-r', '--no-dereference', '-x', 'fifo', src, join(base, 'back')]);
    } finally {
      helper.stop();
      rmSync(join(machine, 'one'), { recursive: true, force: true });
      rmSync(join(machine, 'two'), { recursive: true, force: true });
    }
  });

  it('a cancelled copy stops the helper and leaves no temporary tree', async () => {
    const helper = await CopyHelper.start([COPY_JOBS_MODULE], { ignoreLoad: true });
    let n = 0;
    try {
      // Cancelled once the helper has work, while it copies.
      const cancelled = () => helper.jobs >= 2 && ++n > 20;
      const err = await copy('to', src, '/cancelled', helper, { cancelled }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CopyCancelledError);
      expect(running(helper.pid)).toBe(false);
      expect(readdirSync(machine)).toEqual([]);
    } finally {
      helper.stop();
    }
  });

  describe('on a full file system', () => {
    const fs = join(machine, 'full');
    const small = join(base, 'small');
    beforeAll(() => {
      mkdirSync(fs);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'copy3-mcopy', fs]);
      for (const side of ['helper', 'parent']) {
        mkdirSync(join(small, side, 'sub'), { recursive: true });
        for (let f = 0; f < 100; f++) writeFileSync(join(small, side, 'sub', `f${f}`), `${f}`);
      }
    });
    afterAll(() => execFileSync('umount', [fs]));

    for (const side of ['helper', 'parent'] as const)
      it(`a failure in the ${side} stops the helper and leaves no temporary tree`, async () => {
        const big = join(small, side, 'sub', 'big');
        writeFileSync(big, Buffer.alloc(2 << 20, 1));
        const helper = await CopyHelper.start([COPY_JOBS_MODULE], { ignoreLoad: true });
        try {
          const offloadable = (p: string) => p.startsWith(join(small, 'helper'));
          const err = await copy('to', small, '/full/copy', helper, { offloadable }).catch((e: unknown) => e);
          expect(String(err)).toMatch(/ENOSPC/);
          expect(helper.alive).toBe(false);
          expect(running(helper.pid)).toBe(false);
          await new Promise((r) => setTimeout(r, 200));
          expect(readdirSync(fs)).toEqual([]);
        } finally {
          helper.stop();
          rmSync(big);
        }
      });
  });
});

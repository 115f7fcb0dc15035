import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { closeQuietly, openRoot } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Extractor, TarReader } from '../src/index.js';
import { archive } from './archive.js';

/**
 * The extractor leaves out chown and chmod when the kernel already gave a
 * new file the owner and mode the archive asks for. Where the kernel would
 * not (a setgid target that hands its group down, a default ACL that
 * decides modes instead of the umask, modes the umask cuts), the entries
 * must still come out exactly as archived.
 */

let root: string;
beforeAll(() => {
  root = mkdtempSync(`${tmpdir()}/importd-owners-`);
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

const entries = archive([
  { path: 'd', type: 'directory', mode: 0o755 },
  { path: 'd/root-file', data: 'x', mode: 0o644, uid: 0, gid: 0 },
  { path: 'd/wide', data: 'x', mode: 0o666, uid: 0, gid: 0 },
  { path: 'd/suid', data: 'x', mode: 0o4755, uid: 0, gid: 0 },
  { path: 'd/owned', data: 'x', mode: 0o600, uid: 1000, gid: 1001 },
  { path: 'd/link', type: 'symlink', linkname: 'root-file', uid: 0, gid: 0 },
]);

/** Extracts `tar` into `dir` (under `umask` if given); `beforeFinish` looks at the tree before the directories' metadata goes on. */
function extractInto(
  dir: string,
  tar: Buffer = entries,
  o: { umask?: number; beforeFinish?: () => void } = {},
): void {
  const old = o.umask === undefined ? undefined : process.umask(o.umask);
  const fd = openRoot(dir);
  const ex = new Extractor(fd);
  try {
    const r = new TarReader(ex);
    r.push(tar);
    r.finish();
    o.beforeFinish?.();
    ex.finish();
  } finally {
    ex.close();
    closeQuietly(fd);
    if (old !== undefined) process.umask(old);
  }
}

function expectArchived(dir: string): void {
  const st = (p: string) => statSync(`${dir}/${p}`);
  expect([st('d/root-file').mode & 0o7777, st('d/root-file').uid, st('d/root-file').gid]).toEqual([
    0o644, 0, 0,
  ]);
  expect(st('d/wide').mode & 0o7777).toBe(0o666);
  expect(st('d/suid').mode & 0o7777).toBe(0o4755);
  expect([st('d/owned').mode & 0o7777, st('d/owned').uid, st('d/owned').gid]).toEqual([0o600, 1000, 1001]);
  expect(statSync(`${dir}/d`).gid).toBe(0);
}

describe('owners and modes without the per-file chown/chmod', () => {
  it('a plain target', () => {
    const dir = `${root}/plain`;
    mkdirSync(dir);
    extractInto(dir);
    expectArchived(dir);
  });

  it('a setgid target owned by another group (new files would inherit its group)', () => {
    const dir = `${root}/setgid`;
    mkdirSync(dir);
    chownSync(dir, 0, 4242);
    chmodSync(dir, 0o2775);
    extractInto(dir);
    expectArchived(dir);
  });

  it.skipIf(spawnSync('setfacl', ['--version']).status !== 0)(
    'a target with a default ACL (it decides new files’ modes instead of the umask)',
    () => {
      const dir = `${root}/acl`;
      mkdirSync(dir);
      execFileSync('setfacl', ['-d', '-m', 'u::rwx,g::rwx,o::---', dir]);
      extractInto(dir);
      expectArchived(dir);
    },
  );
});

/**
 * Directories are made with their final mode where that is safe while the
 * extraction runs (as root), so that most need only their mtime at the end;
 * one that others could write into, or that has special bits, or that we
 * could not write into without CAP_DAC_OVERRIDE, stays 0700 until the end.
 */
describe('directory modes during and after the extraction', () => {
  const MTIME = 1600000000;
  const dirs = archive([
    { path: 'open', type: 'directory', mode: 0o755, mtime: { sec: BigInt(MTIME), nsec: 0 } },
    { path: 'open/f', data: 'x' },
    { path: 'shared', type: 'directory', mode: 0o777, mtime: { sec: BigInt(MTIME), nsec: 0 } },
    { path: 'shared/f', data: 'x' },
    { path: 'tmp', type: 'directory', mode: 0o1777, mtime: { sec: BigInt(MTIME), nsec: 0 } },
    { path: 'ro', type: 'directory', mode: 0o555, mtime: { sec: BigInt(MTIME), nsec: 0 } },
    { path: 'ro/f', data: 'x' },
    { path: 'user', type: 'directory', mode: 0o755, uid: 1000, gid: 1000 },
    // A parent made for an earlier entry (0755 by us), then its own entry: the archive's mode wins.
    { path: 'late/f', data: 'x' },
    { path: 'late', type: 'directory', mode: 0o750, mtime: { sec: BigInt(MTIME), nsec: 0 } },
  ]);

  /** Extracts with umask 0 (nothing masks the group/other write bits); the modes seen before finish(). */
  function extract(dir: string): Record<string, number> {
    const during: Record<string, number> = {};
    extractInto(dir, dirs, {
      umask: 0,
      beforeFinish: () => {
        for (const d of ['open', 'shared', 'tmp', 'ro', 'user'])
          during[d] = statSync(`${dir}/${d}`).mode & 0o7777;
      },
    });
    return during;
  }

  it('final modes at once only where nobody else can write; all exact at the end', () => {
    const dir = `${root}/dirs`;
    mkdirSync(dir);
    const during = extract(dir);
    expect(during).toEqual({ open: 0o755, shared: 0o700, tmp: 0o700, ro: 0o700, user: 0o755 });
    const st = (p: string) => statSync(`${dir}/${p}`);
    expect(st('open').mode & 0o7777).toBe(0o755);
    expect(st('shared').mode & 0o7777).toBe(0o777);
    expect(st('tmp').mode & 0o7777).toBe(0o1777);
    expect(st('ro').mode & 0o7777).toBe(0o555);
    expect(st('late').mode & 0o7777).toBe(0o750);
    expect([st('user').uid, st('user').gid, st('user').mode & 0o7777]).toEqual([1000, 1000, 0o755]);
    // The mtimes are set after the last entry went in (a new entry changes its directory's).
    for (const d of ['open', 'shared', 'tmp', 'ro', 'late']) expect(st(d).mtimeMs).toBe(MTIME * 1000);
  });
});

describe('mtimes', () => {
  it('before 1970 and past 2^32 seconds, whole and with nanoseconds, on files, symlinks and directories', () => {
    const dir = `${root}/mtimes`;
    mkdirSync(dir);
    const times = [
      { path: 'neg', sec: -5n, nsec: 0 },
      { path: 'far', sec: 8589934593n, nsec: 7 },
      { path: 'frac', sec: 1700000000n, nsec: 123456789 },
    ];
    extractInto(
      dir,
      archive([
        ...times.map((t) => ({ path: t.path, data: 'x', mtime: { sec: t.sec, nsec: t.nsec } })),
        { path: 'l', type: 'symlink', linkname: 'neg', mtime: { sec: -7n, nsec: 0 } },
        { path: 'd', type: 'directory', mode: 0o755, mtime: { sec: 8589934595n, nsec: 0 } },
      ]),
    );
    const ns = (p: string) => lstatSync(`${dir}/${p}`, { bigint: true }).mtimeNs;
    for (const t of times) expect(ns(t.path)).toBe(t.sec * 1_000_000_000n + BigInt(t.nsec));
    expect(ns('l')).toBe(-7_000_000_000n);
    expect(ns('d')).toBe(8589934595_000_000_000n);
  });
});

describe('a directory the archive lists twice', () => {
  const t = (sec: number) => ({ sec: BigInt(sec), nsec: 0 });
  // Each pair: the first entry needs only its mtime (a plain 0755 root directory), or more (another
  // owner, a mode made 0700 first); the later entry wins in both, as GNU tar has it.
  const twice = archive([
    { path: 'plain-first', type: 'directory', mode: 0o755, mtime: t(1_600_000_000) },
    { path: 'plain-first/f', data: 'x' },
    { path: 'plain-first', type: 'directory', mode: 0o750, uid: 1000, gid: 1001, mtime: t(1_650_000_000) },
    { path: 'owned-first', type: 'directory', mode: 0o1777, uid: 1000, gid: 1001, mtime: t(1_600_000_000) },
    { path: 'owned-first/f', data: 'x' },
    { path: 'owned-first', type: 'directory', mode: 0o755, mtime: t(1_650_000_000) },
  ]);
  const seen = (dir: string, p: string) => {
    const st = statSync(`${dir}/${p}`);
    return [st.mode & 0o7777, st.uid, st.gid, st.mtimeMs / 1000];
  };

  it("takes the later entry's owner, mode and mtime, as GNU tar does", () => {
    const ours = `${root}/twice-ours`;
    const gnu = `${root}/twice-gnu`;
    mkdirSync(ours);
    mkdirSync(gnu);
    extractInto(ours, twice, { umask: 0o022 });
    execFileSync('tar', ['-xpf', '-', '--numeric-owner', '-C', gnu], { input: twice });
    for (const p of ['plain-first', 'owned-first']) expect(seen(ours, p)).toEqual(seen(gnu, p));
    expect(seen(ours, 'plain-first')).toEqual([0o750, 1000, 1001, 1_650_000_000]);
    expect(seen(ours, 'owned-first')).toEqual([0o755, 0, 0, 1_650_000_000]);
  });
});

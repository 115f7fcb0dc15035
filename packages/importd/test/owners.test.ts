import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
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

function extractInto(dir: string): void {
  const fd = openRoot(dir);
  const ex = new Extractor(fd);
  try {
    const r = new TarReader(ex);
    r.push(entries);
    r.finish();
    ex.finish();
  } finally {
    ex.close();
    closeQuietly(fd);
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

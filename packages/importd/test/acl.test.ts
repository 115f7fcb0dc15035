import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../tools/test/fuzz.js';
import { ArchiveError, exportTar, importTar, paxRecord } from '../src/index.js';
import { aclTextToXattr, aclXattrToText } from '../src/tar/acl.js';
import { paxThen } from './archive.js';

/**
 * POSIX ACLs travel as SCHILY.acl.access/.default text (what GNU tar
 * --acls and star write and read): setfacl in a tree, export-tar,
 * import-tar, and getfacl reads the same; GNU tar restores ours and we
 * restore GNU tar's. Hostile ACL text is refused with nothing left.
 */

const haveAcl = spawnSync('setfacl', ['--version']).status === 0;
let root: string;
let pool: ImagePool;

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}
async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}
/** Every ACL in a tree, numeric, paths relative to it. */
const acls = (dir: string) =>
  execFileSync('getfacl', ['-R', '-n', '-p', '.'], { cwd: dir, encoding: 'utf8' }).replace(
    /^# owner.*\n/gm,
    '',
  );

beforeAll(() => {
  root = mkdtempSync(`${tmpdir()}/importd-acl-`);
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
  if (!haveAcl) return;
  const src = `${pool.poolPath}/importd-acl-src`;
  mkdirSync(`${src}/shared/sub`, { recursive: true });
  writeFileSync(`${src}/shared/file`, 'data');
  writeFileSync(`${src}/plain`, 'no acl');
  execFileSync('setfacl', ['-m', 'u:1234:r-x,g:2345:rw-,u:4000000:r--', `${src}/shared/file`]);
  execFileSync('setfacl', ['-m', 'u:1234:rwx,m::r-x', `${src}/shared`]);
  execFileSync('setfacl', ['-d', '-m', 'u:1234:rwx,g:2345:r-x,o::---', `${src}/shared`]);
  execFileSync('setfacl', ['-d', '-m', 'u:77:r--', `${src}/shared/sub`]);
});

afterAll(async () => {
  for (const img of await pool.list()) if (img.name.startsWith('importd-acl')) await pool.remove(img.name);
  rmSync(root, { recursive: true, force: true });
});

describe.skipIf(!haveAcl)('ACLs through export-tar and import-tar', () => {
  it('round-trip: getfacl of the imported tree is identical, the archive holds SCHILY.acl text', async () => {
    const tar = await collect(await exportTar('importd-acl-src', { pool }));
    const text = tar.toString('latin1');
    expect(text).toContain(
      'SCHILY.acl.access=user::rw-,user:1234:r-x,user:4000000:r--,group::r--,group:2345:rw-',
    );
    expect(text).toContain('SCHILY.acl.default=');
    expect(text).not.toContain('SCHILY.xattr.system.posix_acl');
    await importTar(once(tar), 'importd-acl-copy', { pool });
    const want = acls(`${pool.poolPath}/importd-acl-src`);
    expect(want).toContain('user:1234:r-x');
    expect(want).toContain('default:group:2345:r-x');
    expect(acls(`${pool.poolPath}/importd-acl-copy`)).toBe(want);
  });

  it('GNU tar --acls restores ours, and we restore GNU tar --acls', async () => {
    const src = `${pool.poolPath}/importd-acl-src`;
    const want = acls(src);
    const ours = `${root}/ours.tar`;
    writeFileSync(ours, await collect(await exportTar('importd-acl-src', { pool })));
    const out = `${root}/gnu-out`;
    mkdirSync(out);
    execFileSync('tar', ['--acls', '--numeric-owner', '-xpf', ours, '-C', out]);
    expect(acls(out)).toBe(want);
    const gnu = execFileSync('tar', ['--acls', '--numeric-owner', '-cf', '-', '-C', src, '.'], {
      maxBuffer: 1 << 26,
    });
    await importTar(once(gnu), 'importd-acl-gnu', { pool });
    expect(acls(`${pool.poolPath}/importd-acl-gnu`)).toBe(want);
  });

  it('refuses broken or hostile ACL text, with nothing left', async () => {
    const bad = [
      'user::rw-,group::r--', // no other::
      'user::rw-,user:1:r--,group::r--,other::r--', // named entry, no mask
      'user::rw-,user:1:r--,user:1:rw-,group::r--,mask::rw-,other::r--', // duplicate
      'user::rwxr,group::r--,other::r--',
      'user:lisa:r--,user::rw-,group::r--,mask::r--,other::r--', // a name, no numeric id
      'user::rw-,group::r--,other:5:r--',
      'user:4294967295:r--,user::rw-,group::r--,mask::r--,other::r--',
      '',
    ];
    for (const [i, text] of bad.entries()) {
      const name = `importd-acl-bad${i}`;
      const p = importTar(once(paxThen(paxRecord('SCHILY.acl.access', text))), name, { pool });
      await expect(p, text).rejects.toThrow(ArchiveError);
      await expect(p, text).rejects.toThrow(/ACL/);
      expect(readdirSync(pool.poolPath).filter((n) => n.startsWith('.#') || n === name)).toEqual([]);
    }
    // A sane one through the same path is accepted (the PAX framing above is right).
    const ok = paxRecord('SCHILY.acl.access', 'user::rw-,group::r--,other::r--');
    await importTar(once(paxThen(ok)), 'importd-acl-ok', { pool });
  });
});

describe('ACL text parser', () => {
  it('never throws anything but ArchiveError on arbitrary text', () => {
    const piece = fc.constantFrom(
      'user',
      'group',
      'mask',
      'other',
      'u',
      'g',
      ':',
      ',',
      '\n',
      '#',
      'rwx',
      '-',
      '12',
      'x',
      ' ',
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.array(piece, { maxLength: 30 }).map((a) => a.join('')),
        ),
        (s) => {
          try {
            const b = aclTextToXattr(s, 'test');
            expect((b.length - 4) % 8).toBe(0);
          } catch (e) {
            expect(e).toBeInstanceOf(ArchiveError);
          }
        },
      ),
      { numRuns: fuzzRuns(2000) },
    );
  });

  it('text → xattr → text → xattr is stable for valid ACLs', () => {
    const perm = fc.constantFrom('---', 'r--', 'rw-', 'rwx', 'r-x', '--x', '-w-', 'wx');
    const valid = fc
      .record({
        users: fc.uniqueArray(fc.integer({ min: 0, max: 0xfffffffe }), { maxLength: 5 }),
        groups: fc.uniqueArray(fc.integer({ min: 0, max: 0xfffffffe }), { maxLength: 5 }),
        perms: fc.array(perm, { minLength: 14, maxLength: 14 }),
      })
      .map(({ users, groups, perms }) => {
        const p = (i: number) => perms[i]!;
        const items = [`user::${p(0)}`, `group::${p(1)}`, `other::${p(2)}`];
        users.forEach((u, i) => items.push(`user:${u}:${p(3 + i)}`));
        groups.forEach((g, i) => items.push(`group:${g}:${p(8 + i)}`));
        if (users.length + groups.length > 0) items.push(`mask::${p(13)}`);
        return items.reverse().join(',');
      });
    fc.assert(
      fc.property(valid, (text) => {
        const x = aclTextToXattr(text, 'test');
        expect(aclTextToXattr(aclXattrToText(x, 'test'), 'test').equals(x)).toBe(true);
      }),
      { numRuns: fuzzRuns(500) },
    );
  });
});

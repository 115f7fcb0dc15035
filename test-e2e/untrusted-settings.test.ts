import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree, sdNspawn } from './lib/trees.js';

// .nspawn files next to a tree are not trusted (issue 9, items 7 and 8): on
// the real kernel, what they may not do is not done.

const CAP_NET_RAW = 13n;
const CAP_SYS_ADMIN = 21n;

let work: string;
let base: ReturnType<typeof makeBusyboxTree>;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'paths-settings-'));
  base = makeBusyboxTree('paths-settings-base-');
});
afterAll(() => {
  base?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

function capBnd(stdout: string): bigint {
  const m = /CapBnd:\s*([0-9a-f]+)/.exec(stdout);
  if (!m) throw new Error(`no CapBnd in ${JSON.stringify(stdout)}`);
  return BigInt(`0x${m[1]}`);
}

describe('an untrusted .nspawn file', () => {
  for (const userns of [false, true]) {
    it(`adds to the command line's --drop-capability under --settings=override, never replaces it${userns ? ' (-U)' : ''}`, () => {
      const tree = join(work, `paths-drop${userns ? '-u' : ''}`);
      cpSync(base.dir, tree, { recursive: true, verbatimSymlinks: true });
      writeFileSync(`${tree}.nspawn`, '[Exec]\nDropCapability=CAP_NET_RAW\n');
      const r = sdNspawn([
        '-q',
        ...(userns ? ['-U'] : []),
        '--settings=override',
        '--drop-capability=CAP_SYS_ADMIN',
        '-D',
        tree,
        'grep',
        'CapBnd',
        '/proc/self/status',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const bnd = capBnd(r.stdout);
      expect(bnd & (1n << CAP_SYS_ADMIN)).toBe(0n);
      expect(bnd & (1n << CAP_NET_RAW)).toBe(0n);
    });
  }

  it('cannot make a tree from a host directory with Template=', () => {
    const secret = join(work, 'host-secret');
    mkdirSync(secret);
    writeFileSync(join(secret, 'shadow'), 'root:secret\n');
    const tree = join(work, 'paths-template');
    writeFileSync(`${tree}.nspawn`, `[Files]\nTemplate=${secret}\n`);
    const r = sdNspawn(['-D', tree, 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`Ignoring Template= setting, file ${tree}.nspawn is not trusted.`);
    expect(existsSync(tree)).toBe(false);
    // A trusted file (--settings=trusted) may.
    const t = sdNspawn(['-q', '--settings=trusted', '-D', tree, 'true']);
    expect(existsSync(join(tree, 'shadow')), t.stderr).toBe(true);
  });
});

import { chmodSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree, sdNspawn } from './lib/trees.js';

// --private-users-ownership: how the tree's owners look from a user namespace.
let tree: ReturnType<typeof makeBusyboxTree>;
beforeAll(() => {
  tree = makeBusyboxTree('sd-e2e-ownership-');
  // mkdtemp's 0700 would shut an unmapped container root out of the tree's top directory (with 'off').
  chmodSync(tree.dir, 0o755);
});
afterAll(() => tree?.remove());

const ownerInside = (mode: string) =>
  sdNspawn([
    '-q',
    '-D',
    tree.dir,
    '-M',
    'own-test',
    '-U',
    `--private-users-ownership=${mode}`,
    'stat',
    '-c',
    '%u',
    '/bin/busybox',
  ]);

describe('--private-users-ownership', () => {
  it.each(['map', 'auto'])('%s shows root-owned files as the container root’s', (mode) => {
    const r = ownerInside(mode);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('0');
    expect(r.code).toBe(0);
  });

  it('off leaves the owners as they are on disk: unmapped, so the overflow uid', () => {
    const r = ownerInside('off');
    expect(r.stdout.trim()).toBe('65534');
    expect(r.code).toBe(0);
  });

  it('chown is refused before anything starts, with a reason', () => {
    for (const args of [['--private-users-ownership=chown'], ['--private-users-chown']]) {
      const r = sdNspawn(['-q', '-D', tree.dir, '-U', ...args, '/bin/true']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^sd-nspawn: --private-users-ownership=chown is not supported: .*\n$/);
    }
  });
});

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree, NSPAWN_CLI } from './lib/trees.js';

// sd-nspawn's CLI in two bundles (tools/build/lazy-bundle.ts): cli.cjs, and
// extras.cjs with the network and disk-image code, which a start loads only
// when it asks for a network of its own or an image.
const DIST = dirname(NSPAWN_CLI);
let tree: ReturnType<typeof makeBusyboxTree>;
let bare = '';
beforeAll(() => {
  tree = makeBusyboxTree('sd-e2e-lazy-');
  // The bin and cli.cjs without extras.cjs, beside the real dist (koffi is found from there).
  bare = mkdtempSync(join(dirname(DIST), 'dist-lazy-'));
  for (const f of ['sd-nspawn.cjs', 'cli.cjs']) copyFileSync(join(DIST, f), join(bare, f));
});
afterAll(() => {
  tree?.remove();
  if (bare) rmSync(bare, { recursive: true, force: true });
});

const run = (bin: string, args: string[]) =>
  spawnSync(process.execPath, [bin, '-q', '--pipe', '-D', tree.dir, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });

describe('the extras bundle', () => {
  it('holds the network and image code, cli.cjs none of it, and copies nothing of @sd/sys', () => {
    const cli = readFileSync(join(DIST, 'cli.cjs'), 'latin1');
    const extras = readFileSync(join(DIST, 'extras.cjs'), 'latin1');
    for (const pkg of ['networkd-veth', 'gpt']) {
      expect(cli).not.toContain(`\n// ../${pkg}/src/`);
      expect(extras).toContain(`\n// ../${pkg}/src/`);
    }
    for (const own of ['src/network/network.ts', 'src/container/image.ts']) {
      expect(cli).not.toContain(`\n// ${own}\n`);
      expect(extras).toContain(`\n// ${own}\n`);
    }
    // Shared, not copied: one poller, one libc, one SdError (instanceof holds across the two).
    expect(extras).not.toContain('\n// ../sys/src/');
    expect(extras).not.toContain('\n// src/errors.ts\n');
  });

  it('is not loaded by a start without a network of its own or an image', () => {
    const r = run(join(bare, 'sd-nspawn.cjs'), ['/bin/true']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('is loaded for --network-veth: without it that start fails, naming it, and leaves nothing', () => {
    const r = run(join(bare, 'sd-nspawn.cjs'), ['--network-veth', '/bin/true']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('extras.cjs is missing: this install of the package is incomplete');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const machine = basename(tree.dir);
    expect(readdirSync('/run/sd-nspawn').filter((f) => f.startsWith(`${machine}.`))).toEqual([]);
    // With it, the same start works.
    const ok = run(NSPAWN_CLI, ['--network-veth', '/bin/sh', '-c', 'grep -c host0 /proc/net/dev']);
    expect(ok.stderr).toBe('');
    expect(ok.stdout.trim()).toBe('1');
    expect(existsSync(join(bare, 'extras.cjs'))).toBe(false);
  });
});

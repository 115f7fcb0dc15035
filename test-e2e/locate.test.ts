import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree, NSPAWN_CLI, sdNspawn } from './lib/trees.js';

// sd-nspawn without -D or -i: -M NAME finds the image in the machine image
// search path (here the real /var/lib/machines, with a name of the test's
// own), and with neither option the current directory is the tree.
const POOL = '/var/lib/machines';
const NAME = 'sd-e2e-locate';
let madePool = false;
let tree: ReturnType<typeof makeBusyboxTree>;

beforeAll(() => {
  tree = makeBusyboxTree('sd-e2e-locate-', 'ID=located\n');
  if (!existsSync(POOL)) {
    mkdirSync(POOL, { recursive: true, mode: 0o700 });
    madePool = true;
  }
  renameSync(tree.dir, join(POOL, NAME));
});
afterAll(() => {
  rmSync(join(POOL, NAME), { recursive: true, force: true });
  if (madePool) rmSync(POOL, { recursive: true, force: true });
  tree?.remove();
});

describe('sd-nspawn without -D', () => {
  it('-M NAME runs the pool image NAME', () => {
    const r = sdNspawn(['-q', '-M', NAME, 'cat', '/etc/os-release']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ID=located\n');
    expect(r.code).toBe(0);
  });

  it('-M NAME with no such image is an error naming it', () => {
    const r = sdNspawn(['-q', '-M', 'sd-e2e-no-such-image', '/bin/true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^sd-nspawn: No image for machine 'sd-e2e-no-such-image' in \/etc\/machines, /);
  });

  it('with neither -M nor -D the current directory is the tree', () => {
    const r = spawnSync(process.execPath, [NSPAWN_CLI, '-q', '--pipe', 'cat', '/etc/os-release'], {
      cwd: join(POOL, NAME),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ID=located\n');
    expect(r.status).toBe(0);
  });
});

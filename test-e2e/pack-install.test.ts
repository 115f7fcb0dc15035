import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Each package as a user gets it: `npm pack`ed, installed from the tarballs
// into an empty project (dependencies from npm's cache, as `npm ci` left
// it), its API imported and every bin's --help run. Catches a dependency
// that only the workspace provides, a missing file in `files`, a bin that
// is not executable.
const repo = join(import.meta.dirname, '..');
const packages = readdirSync(join(repo, 'packages')).filter((p) => !p.startsWith('.'));
let dir = '';

interface Manifest {
  name: string;
  bin?: Record<string, string>;
}
const manifest = (p: string) =>
  JSON.parse(readFileSync(join(repo, 'packages', p, 'package.json'), 'utf8')) as Manifest;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sd-pack-'));
  const tgz = join(dir, 'tgz');
  const proj = join(dir, 'proj');
  mkdirSync(tgz);
  mkdirSync(proj);
  const ws = packages.flatMap((p) => ['-w', manifest(p).name]);
  execFileSync('npm', ['pack', ...ws, '--pack-destination', tgz, '--silent'], { cwd: repo, stdio: 'pipe' });
  writeFileSync(join(proj, 'package.json'), '{"name":"sd-pack-test","private":true,"type":"module"}\n');
  const tarballs = readdirSync(tgz).map((f) => join(tgz, f));
  execFileSync(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs],
    {
      cwd: proj,
      stdio: 'pipe',
    },
  );
}, 240_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('each package installed alone from its tarball', () => {
  it.each(packages)('@sd/%s imports', (p) => {
    const name = manifest(p).name;
    const r = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `const m = await import('${name}'); console.log(Object.keys(m).length);`],
      { cwd: join(dir, 'proj'), encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(Number(r.stdout.trim())).toBeGreaterThan(0);
  });

  const bins = packages.flatMap((p) => Object.keys(manifest(p).bin ?? {}));
  it.each(bins)('%s --help', (bin) => {
    const r = spawnSync(join(dir, 'proj', 'node_modules', '.bin', bin), ['--help'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${bin} `));
  });
});

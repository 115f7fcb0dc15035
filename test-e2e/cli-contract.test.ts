import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// Every CLI of every package, as systemd's tools behave: --help prints the
// usage and exits 0; a bad option or a missing option argument is one line
// on stderr, "NAME: …", exit status 1, nothing on stdout, never a stack trace.
const repo = join(import.meta.dirname, '..');

interface Bin {
  name: string;
  path: string;
}
const bins: Bin[] = readdirSync(join(repo, 'packages')).flatMap((p) => {
  const dir = join(repo, 'packages', p);
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    bin?: Record<string, string>;
  };
  return Object.entries(manifest.bin ?? {}).map(([name, rel]) => ({ name, path: join(dir, rel) }));
});

/** An option of each CLI that needs a value: given last, without one. */
const VALUED: Record<string, string> = {
  'sd-nspawn': '--directory',
  machinectl: '--property',
  'sd-machined': '--root',
  'sd-dissect': '--json',
  'sd-importd': '--bus-address',
  importctl: '--verify',
  'sd-networkd-veth': '--lock',
};

const run = (b: Bin, args: string[]) =>
  spawnSync(process.execPath, [b.path, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

function expectOneLineError(b: Bin, r: ReturnType<typeof run>, mentions: string): void {
  expect(r.stdout, `${b.name} stdout`).toBe('');
  expect(r.stderr, `${b.name} stderr`).toMatch(new RegExp(`^${b.name}: [^\\n]*${mentions}[^\\n]*\\n$`));
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.status, `${b.name} exit status`).toBe(1);
}

describe.each(bins)('$name', (b) => {
  it('--help prints its usage and exits 0', () => {
    const r = run(b, ['--help']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^${b.name} `));
    expect(r.status).toBe(0);
  });

  it('refuses an unknown option in one line, exit 1', () => {
    expectOneLineError(b, run(b, ['--tst-no-such-option']), '--tst-no-such-option');
  });

  it.skipIf(VALUED[b.name] === undefined)('refuses a missing option argument in one line, exit 1', () => {
    const opt = VALUED[b.name] as string;
    expectOneLineError(b, run(b, [opt]), opt);
  });
});

it('every CLI with an option that needs a value is listed', () => {
  for (const b of bins) if (b.name !== 'sd-llmnr') expect(Object.keys(VALUED)).toContain(b.name);
});

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fakeExt4, writeGpt } from '../test/lib/gpt-writer.js';
import { formatBytes } from './cli/format.js';
import { EXIT, main } from './cli/main.js';
import { partitionTypeGuid } from './dps.js';

const dir = mkdtempSync(join(tmpdir(), 'sd-dissect-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = main(args, {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    isTty: false,
    env: {},
  });
  return { code, stdout, stderr };
}

function image(): string {
  const buf = Buffer.alloc(4 * 1024 * 1024);
  writeGpt(buf, [
    { type: partitionTypeGuid('root', 'x86-64')!, first: 2048, last: 4095, name: 'root', attrs: 1n << 59n },
    { type: partitionTypeGuid('root', 'arm64')!, first: 4096, last: 6143, name: 'foreign' },
  ]);
  fakeExt4(buf, 1024 * 1024);
  const path = join(dir, 'cli.raw');
  writeFileSync(path, buf);
  return path;
}

describe('sd-dissect (in process)', () => {
  it('formats sizes like systemd', () => {
    expect([512, 4096, 168841216, 3 * 1024 ** 3].map(formatBytes)).toEqual([
      '512B',
      '4.0K',
      '161.0M',
      '3.0G',
    ]);
  });

  it('prints the table with notes, or rows only with --no-legend', () => {
    const path = image();
    const r = run([path]);
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toContain('     Table: GPT, 512-byte sectors\n');
    expect(r.stdout).toMatch(/^rw root +\S+ root +ext4 +x86-64 +no +yes +1 1\.0M$/m);
    expect(r.stdout).toContain('Partition 2 not used: for another architecture (arm64)');
    expect(run(['--no-legend', path]).stdout).toMatch(/^rw root .*1\.0M\n$/);
  });

  it('prints JSON with systemd-dissect keys', () => {
    const j = JSON.parse(run(['--json=short', image()]).stdout);
    expect(j.mounts).toEqual([
      expect.objectContaining({
        rw: 'rw',
        designator: 'root',
        fstype: 'ext4',
        growfs: true,
        partno: 1,
        size: 1048576,
      }),
    ]);
    expect(j.partitions[1]).toMatchObject({
      partno: 2,
      role: null,
      ignored: 'for another architecture (arm64)',
    });
    expect(run(['--json=pretty', image()]).stdout).toMatch(/^{\n\t"name": "cli.raw"/);
  });

  it('exit codes for usage errors and missing images', () => {
    expect(run([]).code).toBe(EXIT.USAGE);
    expect(run(['--bogus']).code).toBe(EXIT.USAGE);
    expect(run(['--mount', 'x']).code).toBe(EXIT.USAGE);
    expect(run(['--mount', '--umount', 'x']).code).toBe(EXIT.USAGE);
    const missing = run([join(dir, 'nope.raw')]);
    expect(missing.code).toBe(EXIT.NOINPUT);
    expect(missing.stderr).toMatch(/nope\.raw/);
    expect(run(['--help']).stdout).toMatch(/--umount/);
  });
});

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountRow } from '../src/cli/format.js';
import { dissectImage } from '../src/index.js';
import { loopsOf, scratch, sfdiskJson } from './lib/images.js';

// An image made by a tool nobody here wrote (systemd-repart), read by us and
// by systemd-dissect: the two must agree field by field.

let s: ReturnType<typeof scratch>;
let image: string;

const DEFS: Record<string, string> = {
  '10-esp.conf': 'Type=esp\nFormat=vfat\nSizeMinBytes=64M\nSizeMaxBytes=64M\n',
  '20-root.conf': 'Type=root\nFormat=ext4\nSizeMinBytes=64M\nSizeMaxBytes=64M\n',
  '30-home.conf': 'Type=home\nFormat=ext4\nSizeMinBytes=32M\nSizeMaxBytes=32M\nReadOnly=yes\n',
  '40-srv.conf': 'Type=srv\nFormat=ext4\nSizeMinBytes=32M\nSizeMaxBytes=32M\nGrowFileSystem=yes\n',
  '50-swap.conf': 'Type=swap\nFormat=swap\nSizeMinBytes=16M\nSizeMaxBytes=16M\n',
};

beforeAll(() => {
  s = scratch();
  const defs = join(s.dir, 'repart.d');
  mkdirSync(defs);
  for (const [name, body] of Object.entries(DEFS)) writeFileSync(join(defs, name), `[Partition]\n${body}`);
  image = join(s.dir, 'repart.raw');
  execFileSync(
    'systemd-repart',
    [`--definitions=${defs}`, '--empty=create', '--size=auto', '--dry-run=no', '--no-pager', image],
    { stdio: 'pipe' },
  );
}, 120_000);

afterAll(() => s?.remove());

describe('an image made by systemd-repart', () => {
  it('dissects to the roles, UUIDs, labels, flags and sizes systemd-dissect and sfdisk report', () => {
    const ref = JSON.parse(
      execFileSync('systemd-dissect', ['--json=short', image], { encoding: 'utf8' }),
    ) as {
      size: number;
      mounts: Array<Record<string, unknown>>;
    };
    const ours = dissectImage(image);
    expect(ours.size).toBe(ref.size);
    const rows = ours.partitions.filter((p) => p.role).map((p) => mountRow(ours, p));
    expect(rows.map((r) => r.designator).sort()).toEqual(ref.mounts.map((m) => m.designator).sort());
    for (const m of ref.mounts) {
      const r = rows.find((x) => x.designator === m.designator)!;
      for (const key of [
        'rw',
        'designator',
        'partition_uuid',
        'partition_label',
        'fstype',
        'architecture',
        'growfs',
        'partno',
      ] as const) {
        expect({ designator: m.designator, key, value: r[key] }).toEqual({
          designator: m.designator,
          key,
          value: m[key],
        });
      }
      if (m.verity !== undefined) expect(r.verity).toBe(m.verity);
    }
    // systemd-dissect 252 prints no partition sizes: compare them with sfdisk's table.
    const sf = sfdiskJson(image).partitiontable;
    for (const p of ours.partitions) {
      const ref2 = sf.partitions[p.number! - 1]!;
      expect([p.number, p.offset, p.size]).toEqual([p.number, ref2.start * 512, ref2.size * 512]);
      expect(p.uuid).toBe(ref2.uuid!.toLowerCase());
    }
    expect(ours.roles.home?.flags.readOnly).toBe(true);
    expect(ours.roles.swap?.fs?.type).toBe('swap');
    expect(loopsOf(s.dir)).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { fakeExt4, fakeSquashfs, writeGpt, writeMbr } from '../test/lib/gpt-writer.js';
import { compareVersions, dissectSource } from './dissect/dissect.js';
import { planMounts } from './dissect/plan.js';
import { partitionTypeGuid } from './dps.js';
import { ImageError } from './errors.js';
import { probeFilesystem } from './probe/probe.js';
import { bufferSource } from './source.js';

const MiB = 1024 * 1024;
const T = {
  root: partitionTypeGuid('root', 'x86-64')!,
  rootArm: partitionTypeGuid('root', 'arm64')!,
  usr: partitionTypeGuid('usr', 'x86-64')!,
  verity: partitionTypeGuid('root-verity', 'x86-64')!,
  home: partitionTypeGuid('home')!,
  srv: partitionTypeGuid('srv')!,
  var: partitionTypeGuid('var')!,
  tmp: partitionTypeGuid('tmp')!,
  esp: partitionTypeGuid('esp')!,
  xbootldr: partitionTypeGuid('xbootldr')!,
  swap: partitionTypeGuid('swap')!,
  generic: partitionTypeGuid('linux-generic')!,
};

/** A GPT image whose partitions are 1 MiB each, every one holding a fake ext4 (unless `fs` says otherwise). */
function gpt(
  parts: Array<{ type: string; name?: string; attrs?: bigint; fs?: 'ext4' | 'squashfs' | 'none' }>,
) {
  const buf = Buffer.alloc((parts.length + 2) * MiB);
  writeGpt(
    buf,
    parts.map((p, i) => ({
      type: p.type,
      first: (i + 1) * 2048,
      last: (i + 2) * 2048 - 1,
      ...(p.name ? { name: p.name } : {}),
      ...(p.attrs ? { attrs: p.attrs } : {}),
    })),
  );
  parts.forEach((p, i) => {
    if (p.fs === 'squashfs') fakeSquashfs(buf, (i + 1) * MiB);
    else if (p.fs !== 'none') fakeExt4(buf, (i + 1) * MiB);
  });
  return dissectSource(bufferSource(buf, 'img'), { arch: 'x86-64' });
}

describe('DPS rules', () => {
  it('gives every type its role and plans the mounts in DPS order', () => {
    const img = gpt([
      { type: T.esp },
      { type: T.var },
      { type: T.home },
      { type: T.usr },
      { type: T.root },
      { type: T.srv },
      { type: T.tmp },
      { type: T.swap },
    ]);
    expect(img.table).toBe('gpt');
    expect(Object.keys(img.roles).sort()).toEqual([
      'esp',
      'home',
      'root',
      'srv',
      'swap',
      'tmp',
      'usr',
      'var',
    ]);
    const plan = planMounts(img);
    expect(plan.map((s) => [s.role, s.where, s.partition.number])).toEqual([
      ['root', '/', 5],
      ['usr', '/usr', 4],
      ['home', '/home', 3],
      ['srv', '/srv', 6],
      ['var', '/var', 2],
      ['tmp', '/var/tmp', 7],
      ['esp', '/efi', 1],
    ]);
    expect(plan.find((s) => s.role === 'esp')!.alternative).toBe('/boot');
  });

  it('puts the ESP at /efi and XBOOTLDR at /boot when both exist', () => {
    const plan = planMounts(gpt([{ type: T.root }, { type: T.xbootldr }, { type: T.esp }]));
    expect(plan.map((s) => [s.role, s.where, s.alternative])).toEqual([
      ['root', '/', undefined],
      ['xbootldr', '/boot', undefined],
      ['esp', '/efi', undefined],
    ]);
  });

  it('ignores root of another architecture and no-auto partitions', () => {
    const img = gpt([{ type: T.rootArm }, { type: T.root }, { type: T.home, attrs: 1n << 63n }]);
    expect(img.roles.root?.number).toBe(2);
    expect(img.partitions[0]!.ignored).toBe('for another architecture (arm64)');
    expect(img.partitions[2]!.ignored).toMatch(/no-auto/);
    expect(img.roles.home).toBeUndefined();
  });

  it('takes the newest root by label, the first of the others', () => {
    const img = gpt([
      { type: T.root, name: 'os_1.9' },
      { type: T.root, name: 'os_1.10' },
      { type: T.home },
      { type: T.home },
    ]);
    expect(img.roles.root?.label).toBe('os_1.10');
    expect(img.partitions[0]!.ignored).toMatch(/newer root/);
    expect(img.roles.home?.number).toBe(3);
    expect(img.partitions[3]!.ignored).toMatch(/partition 3 is the home partition already/);
    expect(compareVersions('a2', 'a10')).toBeLessThan(0);
  });

  it('decodes read-only and grow-fs, and makes read-only mounts of them and of squashfs', () => {
    const img = gpt([
      { type: T.root, attrs: (1n << 59n) | (1n << 60n) },
      { type: T.usr, fs: 'squashfs' },
      { type: T.home },
    ]);
    expect(img.roles.root?.flags).toEqual({ readOnly: true, growFs: true, noAuto: false });
    const plan = planMounts(img);
    expect(plan.map((s) => [s.role, s.readOnly, s.readOnlyReason])).toEqual([
      ['root', true, 'partition-flag'],
      ['usr', true, 'file-system'],
      ['home', false, undefined],
    ]);
    expect(planMounts(img, { readOnly: true }).every((s) => s.readOnly && s.options.ro === true)).toBe(true);
  });

  it('falls back to a single Linux-generic partition, and refuses two', () => {
    expect(gpt([{ type: T.generic }, { type: T.home }]).roles.root?.number).toBe(1);
    const two = gpt([{ type: T.generic }, { type: T.generic }]);
    expect(two.unusable?.code).toBe('NOT_UNIQUE');
    expect(() => planMounts(two)).toThrow(/2 Linux-generic partitions \(1, 2\)/);
  });

  it('says why an image has no root', () => {
    const img = gpt([{ type: T.home }]);
    expect(img.unusable?.code).toBe('NO_ROOT');
    expect(() => planMounts(img)).toThrow(ImageError);
    expect(() => planMounts(img)).toThrow(/no root partition for x86-64/);
    expect(() => planMounts(gpt([{ type: T.usr }]))).toThrow(/only a \/usr partition/);
  });

  it('refuses to plan LUKS, verity hash data and unknown contents, naming them', () => {
    const luks = gpt([{ type: T.root, fs: 'none' }]);
    expect(() => planMounts(luks)).toThrow(/partition 1 \(root\) holds no file system that sd recognises/);
    const buf = Buffer.alloc(4 * MiB);
    writeGpt(buf, [{ type: T.root, first: 2048, last: 4095 }]);
    buf.write('LUKS\xba\xbe', MiB, 'latin1');
    buf.writeUInt16BE(2, MiB + 6);
    const img = dissectSource(bufferSource(buf, 'img'), { arch: 'x86-64' });
    expect(img.roles.root?.fs?.type).toBe('crypto_LUKS');
    expect(() => planMounts(img)).toThrow(
      /LUKS2-encrypted: unlocking encrypted partitions is not supported yet/,
    );
    buf.fill(0, MiB, MiB + 512);
    buf.write('verity\0\0', MiB, 'latin1');
    expect(() => planMounts(dissectSource(bufferSource(buf, 'img'), { arch: 'x86-64' }))).toThrow(
      /dm-verity hash data/,
    );
  });

  it('notes verity partitions it cannot use', () => {
    const img = gpt([{ type: T.root }, { type: T.verity, fs: 'none' }]);
    expect(img.roles['root-verity']?.number).toBe(2);
    expect(img.warnings.join()).toMatch(/dm-verity is not supported yet/);
  });

  it('uses a bootable MBR 0x83 partition as root, and only that', () => {
    const buf = Buffer.alloc(4 * MiB);
    writeMbr(buf, [
      { type: 0x83, start: 2048, count: 2048, bootable: true },
      { type: 0x83, start: 4096, count: 2048 },
    ]);
    fakeExt4(buf, MiB);
    const img = dissectSource(bufferSource(buf, 'img'));
    expect(img.table).toBe('mbr');
    expect(img.roles.root?.number).toBe(1);
    expect(img.partitions[1]!.ignored).toMatch(/not marked bootable/);
    buf[446] = 0;
    expect(dissectSource(bufferSource(buf, 'img')).unusable?.message).toMatch(/no bootable MBR partition/);
  });

  it('takes a bare file system as root, and refuses what is nothing', () => {
    const buf = Buffer.alloc(2 * MiB);
    fakeExt4(buf, 0);
    const img = dissectSource(bufferSource(buf, 'img'));
    expect(img.table).toBe('none');
    expect(img.roles.root).toMatchObject({ number: null, offset: 0, size: 2 * MiB });
    expect(planMounts(img)[0]).toMatchObject({ role: 'root', where: '/', fstype: 'ext4' });
    expect(() => dissectSource(bufferSource(Buffer.alloc(MiB), 'zero'))).toThrow(
      /zero: neither a partition table \(GPT, MBR\) nor a file system/,
    );
    expect(() => dissectSource(bufferSource(Buffer.alloc(0), 'empty'))).toThrow(/empty/);
  });
});

describe('superblock probes', () => {
  it('reads ext4 UUID and label, and tells ext2/3/4 apart', () => {
    const buf = Buffer.alloc(4096);
    fakeExt4(buf, 0);
    expect(probeFilesystem(bufferSource(buf))).toEqual({
      type: 'ext4',
      uuid: '00112233-4455-6677-8899-aabbccddeeff',
      label: 'testfs',
    });
    buf.writeUInt32LE(0x2, 1024 + 96); // filetype only
    expect(probeFilesystem(bufferSource(buf))?.type).toBe('ext2');
    buf.writeUInt32LE(0x4, 1024 + 92); // has_journal
    expect(probeFilesystem(bufferSource(buf))?.type).toBe('ext3');
  });

  it('recognises a vfat boot sector and the others by magic', () => {
    const fat = Buffer.alloc(4096);
    fat.writeUInt16LE(512, 11);
    fat[13] = 4;
    fat.writeUInt16LE(32, 14);
    fat[16] = 2;
    fat.write('FAT32   ', 82, 'latin1');
    fat.writeUInt32LE(0x67e4047e, 67);
    fat.write('ESP        ', 71, 'latin1');
    fat.writeUInt16LE(0xaa55, 510);
    expect(probeFilesystem(bufferSource(fat))).toEqual({ type: 'vfat', uuid: '67E4-047E', label: 'ESP' });
    const xfs = Buffer.alloc(4096);
    xfs.write('XFSB', 0, 'latin1');
    expect(probeFilesystem(bufferSource(xfs))?.type).toBe('xfs');
    const swap = Buffer.alloc(8192);
    swap.write('SWAPSPACE2', 4096 - 10, 'latin1');
    expect(probeFilesystem(bufferSource(swap))?.type).toBe('swap');
    const erofs = Buffer.alloc(4096);
    erofs.writeUInt32LE(0xe0f5e1e2, 1024);
    expect(probeFilesystem(bufferSource(erofs))?.type).toBe('erofs');
    const btrfs = Buffer.alloc(0x11000);
    btrfs.write('_BHRfS_M', 0x10040, 'latin1');
    expect(probeFilesystem(bufferSource(btrfs))?.type).toBe('btrfs');
    expect(probeFilesystem(bufferSource(Buffer.alloc(100)))).toBeUndefined();
  });
});

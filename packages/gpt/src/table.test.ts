import { describe, expect, it } from 'vitest';
import { fakeExt4, fixEntriesCrc, fixHeaderCrc, writeGpt, writeMbr } from '../test/lib/gpt-writer.js';
import { ImageError } from './errors.js';
import { bufferSource } from './source.js';
import { readGpt } from './table/gpt.js';
import { readMbr } from './table/mbr.js';

const ROOT = '4f68bce3-e8cd-4db1-96e7-fbcaf984b709';
const HOME = '933ac7e1-2eb4-4f13-b844-0e14e2aef915';
const MiB = 1024 * 1024;

function image(size = 8 * MiB, ss = 512) {
  const buf = Buffer.alloc(size);
  const perMiB = MiB / ss;
  writeGpt(
    buf,
    [
      {
        type: ROOT,
        first: perMiB,
        last: 3 * perMiB - 1,
        name: 'root',
        uuid: 'aaaaaaaa-0000-4000-8000-000000000001',
      },
      { type: HOME, first: 3 * perMiB, last: 5 * perMiB - 1, name: 'home', attrs: 1n << 60n },
    ],
    { sectorSize: ss },
  );
  return buf;
}

function fails(buf: Buffer, code: string, pattern: RegExp): void {
  let err: unknown;
  try {
    readGpt(bufferSource(buf, 'test.img'));
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ImageError);
  expect((err as ImageError).code).toBe(code);
  expect((err as Error).message).toMatch(/^test\.img: /);
  expect((err as Error).message).toMatch(pattern);
}

describe('GPT reader', () => {
  it.each([512, 4096])('reads both headers and the entries with %i-byte sectors', (ss) => {
    const t = readGpt(bufferSource(image(8 * MiB, ss)))!;
    expect(t.kind).toBe('gpt');
    expect(t.sectorSize).toBe(ss);
    expect(t.warnings).toEqual([]);
    expect(t.entries).toHaveLength(2);
    expect(t.entries[0]).toMatchObject({
      number: 1,
      start: MiB,
      size: 2 * MiB,
      typeGuid: ROOT,
      uuid: 'aaaaaaaa-0000-4000-8000-000000000001',
      name: 'root',
      attributes: 0n,
    });
    expect(t.entries[1]).toMatchObject({ number: 2, start: 3 * MiB, size: 2 * MiB, attributes: 1n << 60n });
  });

  it('says there is no GPT when LBA 1 has no signature', () => {
    expect(readGpt(bufferSource(Buffer.alloc(MiB)))).toBeUndefined();
  });

  it('refuses a wrong header CRC', () => {
    const buf = image();
    buf[512 + 16]! ^= 1;
    fails(buf, 'GPT_HEADER_CRC', /primary GPT header \(LBA 1\): header CRC32 mismatch/);
  });

  it('refuses a wrong entry-array CRC', () => {
    const buf = image();
    buf[2 * 512 + 40]! ^= 0x80; // inside entry 1
    fails(buf, 'GPT_ENTRIES_CRC', /primary GPT partition entry array \(LBA 2\): CRC32 mismatch/);
  });

  it('refuses a wrong backup header CRC', () => {
    const buf = image();
    buf[buf.length - 512 + 40]! ^= 1;
    fails(buf, 'GPT_HEADER_CRC', /backup GPT header/);
  });

  it('refuses a backup header that disagrees with the primary', () => {
    const buf = image();
    const last = buf.length / 512 - 1;
    // Another usable area in the backup, with a valid CRC.
    buf.writeBigUInt64LE(100n, last * 512 + 40);
    fixHeaderCrc(buf, last);
    fails(buf, 'GPT_BACKUP_MISMATCH', /disagrees with the primary: usable area 100\.\./);
  });

  it('refuses backup entries that differ', () => {
    const buf = image();
    const last = buf.length / 512 - 1;
    const backupEntries = last - 32;
    buf[backupEntries * 512 + 200]! ^= 1;
    fixEntriesCrc(buf, last);
    fails(buf, 'GPT_BACKUP_MISMATCH', /the partition entries differ/);
  });

  it('refuses entry counts and sizes that overflow or run past the end', () => {
    const big = image();
    big.writeUInt32LE(0xffffffff, 512 + 80);
    fixHeaderCrc(big, 1);
    fails(big, 'GPT_HEADER_INVALID', /4294967295 partition entries of 128 bytes .* exceed/);
    const wide = image();
    wide.writeUInt32LE(0xfffffff8, 512 + 84);
    fixHeaderCrc(wide, 1);
    fails(wide, 'GPT_HEADER_INVALID', /entry size 4294967288/);
    const far = image();
    far.writeBigUInt64LE(0xfffffffffffffff0n, 512 + 72);
    fixHeaderCrc(far, 1);
    fails(far, 'TRUNCATED', /partition entry array ending at LBA .* beyond the end/);
    const small = image();
    small.writeUInt32LE(100, 512 + 84);
    fixHeaderCrc(small, 1);
    fails(small, 'GPT_HEADER_INVALID', /entry size 100/);
  });

  it('refuses overlapping partitions', () => {
    const buf = Buffer.alloc(8 * MiB);
    writeGpt(buf, [
      { type: ROOT, first: 2048, last: 6000 },
      { type: HOME, first: 5000, last: 8000 },
    ]);
    fails(buf, 'PARTITION_OVERLAP', /partitions 1 \(LBA 2048\.\.6000\) and 2 \(LBA 5000\.\.8000\) overlap/);
  });

  it('refuses partitions outside the disk or the usable area', () => {
    const out = Buffer.alloc(8 * MiB);
    writeGpt(out, [{ type: ROOT, first: 2048, last: 1_000_000 }]);
    fails(
      out,
      'PARTITION_OUT_OF_RANGE',
      /partition 1 \(LBA 2048\.\.1000000\) extends beyond the end of the disk/,
    );
    const usable = Buffer.alloc(8 * MiB);
    writeGpt(usable, [{ type: ROOT, first: 1, last: 100 }]);
    fails(usable, 'PARTITION_OUT_OF_RANGE', /outside the usable area/);
    const backwards = Buffer.alloc(8 * MiB);
    writeGpt(backwards, [{ type: ROOT, first: 5000, last: 4000 }]);
    fails(backwards, 'PARTITION_OUT_OF_RANGE', /ends \(LBA 4000\) before it starts/);
  });

  it('refuses a truncated file', () => {
    const buf = image();
    fails(
      buf.subarray(0, 6 * MiB),
      'TRUNCATED',
      /the other header at LBA 16383 lies beyond the end .* truncated file\?/,
    );
    fails(buf.subarray(0, 1024), 'TRUNCATED', /too small/);
  });

  it('refuses a GPT without a protective MBR', () => {
    const buf = image();
    buf.fill(0, 446, 512);
    fails(buf, 'GPT_NO_PROTECTIVE_MBR', /no protective MBR/);
  });

  it('accepts a grown image with a warning (backup header not at the end)', () => {
    const buf = Buffer.concat([image(), Buffer.alloc(MiB)]);
    const t = readGpt(bufferSource(buf))!;
    expect(t.entries).toHaveLength(2);
    expect(t.warnings[0]).toMatch(/not at the last sector/);
  });
});

describe('MBR reader', () => {
  it('reads the primary entries', () => {
    const buf = Buffer.alloc(4 * MiB);
    writeMbr(buf, [
      { type: 0x83, start: 2048, count: 2048, bootable: true },
      { type: 0x82, start: 4096, count: 1024 },
    ]);
    const t = readMbr(bufferSource(buf))!;
    expect(t).toMatchObject({ kind: 'mbr', sectorSize: 512, diskSignature: '12345678' });
    expect(t.entries).toEqual([
      { number: 1, start: MiB, size: MiB, mbrType: 0x83, bootable: true },
      { number: 2, start: 2 * MiB, size: 512 * 1024, mbrType: 0x82, bootable: false },
    ]);
  });

  it('is not an MBR without the signature, with bad boot flags, or with no entries', () => {
    expect(readMbr(bufferSource(Buffer.alloc(4096)))).toBeUndefined();
    const buf = Buffer.alloc(4 * MiB);
    writeMbr(buf, [{ type: 0x83, start: 2048, count: 2048 }]);
    buf[446] = 0x12;
    expect(readMbr(bufferSource(buf))).toBeUndefined();
    writeMbr(buf, []);
    expect(readMbr(bufferSource(buf))).toBeUndefined();
  });

  it('refuses overlaps, partitions past the end and empty entries', () => {
    const buf = Buffer.alloc(4 * MiB);
    writeMbr(buf, [
      { type: 0x83, start: 2048, count: 4000 },
      { type: 0x83, start: 4000, count: 1000 },
    ]);
    expect(() => readMbr(bufferSource(buf))).toThrow(/partitions 1 .* and 2 .* overlap/);
    writeMbr(buf, [{ type: 0x83, start: 2048, count: 100000 }]);
    expect(() => readMbr(bufferSource(buf))).toThrow(/beyond the end of the disk/);
    writeMbr(buf, [{ type: 0x83, start: 0, count: 10 }]);
    expect(() => readMbr(bufferSource(buf))).toThrow(/MBR partition 1 \(type 0x83\) starts at sector 0/);
  });

  it('refuses a protective MBR without a GPT', () => {
    const buf = Buffer.alloc(MiB);
    writeMbr(buf, [{ type: 0xee, start: 1, count: 2047 }]);
    expect(() => readMbr(bufferSource(buf))).toThrow(/protective MBR .* no GPT header/);
  });

  it('lets the probe see a file system in an MBR image', () => {
    const buf = Buffer.alloc(4 * MiB);
    writeMbr(buf, [{ type: 0x83, start: 2048, count: 4096, bootable: true }]);
    fakeExt4(buf, MiB);
    expect(readMbr(bufferSource(buf))!.entries[0]!.start).toBe(MiB);
  });
});

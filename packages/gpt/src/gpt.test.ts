import { describe, expect, it } from 'vitest';
import {
  decodePartitionFlags,
  GPT_ATTR,
  partitionTypeFromGuid,
  partitionTypeGuid,
  partitionTypes,
} from './dps.js';
import { guidFromBytes, guidToBytes, isGuid } from './guid.js';

describe('GUIDs', () => {
  it('writes the first three fields little-endian', () => {
    // The ESP type as it appears on disk (UEFI spec).
    expect(guidToBytes('C12A7328-F81F-11D2-BA4B-00A0C93EC93B').toString('hex')).toBe(
      '28732ac11ff8d211ba4b00a0c93ec93b',
    );
  });

  it('reads on-disk bytes back to the text form', () => {
    const disk = Buffer.from('28732ac11ff8d211ba4b00a0c93ec93b', 'hex');
    expect(guidFromBytes(disk)).toBe('c12a7328-f81f-11d2-ba4b-00a0c93ec93b');
    const padded = Buffer.concat([Buffer.alloc(3), disk]);
    expect(guidFromBytes(padded, 3)).toBe('c12a7328-f81f-11d2-ba4b-00a0c93ec93b');
  });

  it('round-trips every DPS type', () => {
    for (const t of partitionTypes()) expect(guidFromBytes(guidToBytes(t.guid))).toBe(t.guid);
  });

  it('rejects malformed input', () => {
    expect(isGuid('c12a7328-f81f-11d2-ba4b-00a0c93ec93')).toBe(false);
    expect(() => guidToBytes('not-a-guid')).toThrow(/Not a GUID/);
    expect(() => guidFromBytes(Buffer.alloc(15))).toThrow(/16 bytes/);
  });
});

describe('Discoverable Partitions', () => {
  it('knows the types by GUID, in any case', () => {
    expect(partitionTypeFromGuid('4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709')).toMatchObject({
      designator: 'root',
      arch: 'x86-64',
    });
    expect(partitionTypeFromGuid('0fc63daf-8483-4772-8e79-3d69d8477de4')?.designator).toBe('linux-generic');
    expect(partitionTypeFromGuid('00000000-0000-0000-0000-000000000000')).toBeUndefined();
  });

  it('finds the GUID of a designator', () => {
    expect(partitionTypeGuid('root', 'arm64')).toBe('b921b045-1df0-41c3-af44-4c6f280d3fae');
    expect(partitionTypeGuid('home')).toBe('933ac7e1-2eb4-4f13-b844-0e14e2aef915');
    expect(partitionTypeGuid('root')).toBeUndefined();
  });

  it('has no duplicate GUIDs', () => {
    expect(new Set(partitionTypes().map((t) => t.guid)).size).toBe(partitionTypes().length);
  });

  it('decodes the attribute bits', () => {
    expect(decodePartitionFlags(GPT_ATTR.READ_ONLY | GPT_ATTR.NO_AUTO)).toEqual({
      readOnly: true,
      noAuto: true,
      growFs: false,
    });
    expect(decodePartitionFlags(0n)).toEqual({ readOnly: false, noAuto: false, growFs: false });
  });
});

import { describe, expect, it } from 'vitest';
import {
  isTransferType,
  parseExportFormat,
  parseImageType,
  parseTransferType,
  parseVerify,
  TRANSFER_TYPES,
  transferObjectPath,
} from './types.js';

describe('importd names', () => {
  it('parses the verification modes', () => {
    expect(parseVerify('no')).toBe('no');
    expect(parseVerify('checksum')).toBe('checksum');
    expect(parseVerify('signature')).toBe('signature');
    expect(parseVerify('')).toBe('signature');
  });

  it('rejects unknown modes naming the input and the choices', () => {
    expect(() => parseVerify('yes')).toThrow(/"yes".*no, checksum, signature/);
    expect(() => parseVerify('Signature')).toThrow(/verification mode/);
  });

  it('knows the transfer and image types', () => {
    for (const t of TRANSFER_TYPES) expect(parseTransferType(t)).toBe(t);
    expect(isTransferType('pull-tar')).toBe(true);
    expect(isTransferType('pull-oci')).toBe(false);
    expect(() => parseTransferType('pull-oci')).toThrow(/transfer type/);
    expect(parseImageType('subvolume')).toBe('subvolume');
    expect(() => parseImageType('qcow2')).toThrow(/image type/);
  });

  it('picks the export format from the argument or the file name', () => {
    expect(parseExportFormat('zstd')).toBe('zstd');
    expect(parseExportFormat('', 'image.tar.xz')).toBe('xz');
    expect(parseExportFormat('', 'image.tgz')).toBe('gzip');
    expect(parseExportFormat('', 'image.raw.bz2')).toBe('bzip2');
    expect(parseExportFormat('', 'image.tar.zst')).toBe('zstd');
    expect(parseExportFormat('', 'image.tar')).toBe('uncompressed');
    expect(parseExportFormat('')).toBe('uncompressed');
    expect(() => parseExportFormat('lz4')).toThrow(/export format/);
  });

  it('builds transfer object paths', () => {
    expect(transferObjectPath(7)).toBe('/org/freedesktop/import1/transfer/_7');
    expect(() => transferObjectPath(-1)).toThrow(/transfer id/);
  });
});

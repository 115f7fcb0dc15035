import { InvalidArgumentError } from '@sd/sys';

/**
 * GUIDs as GPT stores them: the text form 00112233-4455-6677-8899-aabbccddeeff
 * is written to disk "mixed-endian" — the first three fields little-endian,
 * the last two as they read.
 */

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isGuid(text: string): boolean {
  return GUID_RE.test(text);
}

/** The 16 on-disk bytes of a GUID in text form. */
export function guidToBytes(text: string): Buffer {
  if (!isGuid(text)) throw new InvalidArgumentError(`Not a GUID: ${JSON.stringify(text)}`);
  const hex = Buffer.from(text.replaceAll('-', ''), 'hex');
  const out = Buffer.alloc(16);
  out.writeUInt32LE(hex.readUInt32BE(0), 0);
  out.writeUInt16LE(hex.readUInt16BE(4), 4);
  out.writeUInt16LE(hex.readUInt16BE(6), 6);
  hex.copy(out, 8, 8, 16);
  return out;
}

/** The text form (lower case) of 16 on-disk GUID bytes at `offset`. */
export function guidFromBytes(bytes: Uint8Array, offset = 0): string {
  if (bytes.length < offset + 16) throw new InvalidArgumentError('A GUID needs 16 bytes');
  const b = Buffer.from(bytes.buffer, bytes.byteOffset + offset, 16);
  const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
  const tail = b.subarray(8).toString('hex');
  return [
    hex(b.readUInt32LE(0), 8),
    hex(b.readUInt16LE(4), 4),
    hex(b.readUInt16LE(6), 4),
    tail.slice(0, 4),
    tail.slice(4),
  ].join('-');
}

/** Lower-cases a GUID in text form, so that GUIDs compare as strings. */
export function normalizeGuid(text: string): string {
  if (!isGuid(text)) throw new InvalidArgumentError(`Not a GUID: ${JSON.stringify(text)}`);
  return text.toLowerCase();
}

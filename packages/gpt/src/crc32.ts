/** CRC-32 (IEEE 802.3, as GPT uses it). zlib's when Node has it, else a table. */

let table: Uint32Array | undefined;

function slowCrc32(data: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[i] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of data) crc = table[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

type Crc32 = (data: Uint8Array) => number;
// node:zlib is loaded on first use: its load (with node:stream) costs a CLI
// start that never reads a GPT about 3 ms.
let native: Crc32 | null | undefined;

export function crc32(data: Uint8Array): number {
  native ??= (process.getBuiltinModule('node:zlib') as { crc32?: Crc32 }).crc32 ?? null;
  return native ? native(data) >>> 0 : slowCrc32(data);
}

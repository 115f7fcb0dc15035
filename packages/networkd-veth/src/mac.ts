import { readFileSync } from 'node:fs';
import { siphash24 } from './siphash.js';

/**
 * MAC addresses of container links, derived as systemd-nspawn derives them:
 * SipHash-2-4 of the host's machine ID followed by the machine name (and,
 * for the n-th extra link, n as a little-endian 64-bit number), under a
 * fixed key per kind of link; the first six bytes of the little-endian
 * result, made unicast and locally administered. Stable for a machine name
 * on one host, different across hosts.
 */

export const MAC_KEYS = {
  host: Buffer.from('1a376fc746ec450bada3d53106605db1', 'hex'),
  container: Buffer.from('c3c4f919b557b21ce6cf1427039ceea2', 'hex'),
  vethExtraHost: Buffer.from('48c7f6b7ea9d4c9eb728d4de91d5bf66', 'hex'),
  vethExtraContainer: Buffer.from('af501761cef94d35840d2b2054bece59', 'hex'),
  macvlan: Buffer.from('00136dbc66834481bb0cf9511f24a66f', 'hex'),
} as const;

export type MacKey = keyof typeof MAC_KEYS;

let hostMachineId: Buffer | undefined;

/** The host's /etc/machine-id as 16 bytes (zeros when there is none, as in a bare build root). */
export function hostMachineIdBytes(): Buffer {
  if (hostMachineId) return hostMachineId;
  try {
    const hex = readFileSync('/etc/machine-id', 'utf8').trim();
    hostMachineId = /^[0-9a-f]{32}$/i.test(hex) ? Buffer.from(hex, 'hex') : Buffer.alloc(16);
  } catch {
    hostMachineId = Buffer.alloc(16);
  }
  return hostMachineId;
}

export function generateMac(
  machineName: string,
  key: MacKey,
  index = 0,
  machineId: Buffer = hostMachineIdBytes(),
): string {
  const parts = [machineId, Buffer.from(machineName)];
  if (index > 0) {
    const n = Buffer.alloc(8);
    n.writeBigUInt64LE(BigInt(index));
    parts.push(n);
  }
  const h = siphash24(Buffer.concat(parts), MAC_KEYS[key]);
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(h);
  b[0] = (b[0]! & 0xfe) | 0x02; // unicast, locally administered
  return [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

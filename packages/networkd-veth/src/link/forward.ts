import { readFileSync, writeFileSync } from 'node:fs';
import { SdError } from '@sd/sys';

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

/**
 * Turns IPv4 forwarding on in the network namespace of the calling thread
 * (sysctls under /proc/sys/net belong to the namespace of whoever opens
 * them); left on afterwards, as systemd-networkd leaves it. Returns whether
 * it had to change it.
 */
export function enableIPv4Forwarding(): boolean {
  try {
    if (readFileSync(IP_FORWARD, 'utf8').trim() === '1') return false;
    writeFileSync(IP_FORWARD, '1\n');
    return true;
  } catch (e) {
    throw new SdError('EACCES', `Cannot enable IPv4 forwarding (${IP_FORWARD}): ${(e as Error).message}`, {
      cause: e,
    });
  }
}

import type { ClientLease } from './client-lease.js';

/** When a client sends again (RFC 2131 §4.1, §4.4.5), all in ms. */

const MAX_RETRANSMIT_MS = 64_000;

/** The wait before retransmission number `tries` + 1: doubling from `firstMs`, up to 64 s, randomized. */
export function retransmitDelay(tries: number, firstMs: number): number {
  const base = Math.min(MAX_RETRANSMIT_MS, firstMs * 2 ** Math.min(tries, 10));
  // §4.1: randomized by ±1 s (scaled down with short delays).
  return Math.max(50, base + (Math.random() * 2 - 1) * Math.min(1000, base / 4));
}

// §4.4.5: half the time left to T2 (RENEWING) or to the lease's end (REBINDING), at least
// 60 s; the minimum scales down with leases shorter than 10 minutes.
export const renewStepMs = (l: ClientLease): number =>
  Math.max(Math.min(60_000, l.t2 * 100), ((l.t2 - l.t1) * 1000) / 2);

export const rebindStepMs = (l: ClientLease): number =>
  Math.max(Math.min(60_000, l.leaseTime * 100), ((l.leaseTime - l.t2) * 1000) / 2);

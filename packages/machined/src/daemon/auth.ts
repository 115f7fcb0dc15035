import { accessDenied } from '../bus/errors.js';
import type { CallContext } from '../bus/types.js';

/**
 * Mutating calls are for root only. systemd asks polkit for non-root
 * callers; without polkit on the bus that is "denied", and the reply is
 * org.freedesktop.DBus.Error.AccessDenied — the same here.
 */
export async function requireRoot(ctx: CallContext): Promise<void> {
  if ((await ctx.senderUid()) !== 0) throw accessDenied();
}

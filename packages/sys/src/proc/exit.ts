import { lazyFunc } from '../ffi/libc.js';

const c = { _exit: lazyFunc('void _exit(int status)') };

/**
 * Ends the process now with `status` (_exit(2): every thread, no atexit
 * handlers, nothing flushed but what the kernel holds). Node's own exit
 * disposes V8's platform and joins the libuv pool's threads first (measured:
 * ~4 ms of a short CLI's run here), and hangs while one of them is blocked.
 * Only for a program whose output is written and whose stdio Node never
 * touched (see @sd/basic's runMain).
 */
export function exitNow(status: number): never {
  c._exit(status & 0xff);
  throw new Error('_exit returned');
}

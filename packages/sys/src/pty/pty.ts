import { O } from '../constants.js';
import { closeQuietly, open } from '../fd/fd.js';
import { check, lazyFunc } from '../ffi/libc.js';
import type { SpawnProgram } from '../spawn/program.js';
import { view } from '../view.js';

export * from './termios.js';

export const TIOCSCTTY = 0x540e;
export const TIOCNOTTY = 0x5422;
export const TIOCGPTN = 0x80045430;
export const TIOCSPTLCK = 0x40045431;
export const TIOCGPTPEER = 0x5441;

const c = {
  ioctlPtr: lazyFunc('ioctl', 'int', ['int', 'unsigned long', 'uint8_t *']),
  ioctlInt: lazyFunc('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']),
};

/** A pseudo-terminal pair: the master we keep, the peer (slave) a payload gets. */
export interface Pty {
  /** The master side: O_RDWR|O_NOCTTY|O_CLOEXEC, and O_NONBLOCK unless asked otherwise. */
  master: number;
  /** The peer opened through the master (TIOCGPTPEER): O_RDWR|O_NOCTTY|O_CLOEXEC. */
  peer: number;
  /** N of /dev/pts/N. */
  number: number;
  /** /dev/pts/N as the devpts instance of `ptmx` names it. */
  path: string;
}

export interface OpenPtyOptions {
  /** The ptmx to open: `/dev/ptmx` or a container's `<devpts>/ptmx`. */
  ptmx?: string;
  /** Open the master non-blocking (for reading it through the poller). Default true. */
  nonBlocking?: boolean;
}

/** Unlocks the peer of a master (TIOCSPTLCK with 0), as unlockpt(3). */
export function unlockPty(master: number): void {
  const zero = Buffer.alloc(4);
  check('ioctl(TIOCSPTLCK)', c.ioctlPtr(master, TIOCSPTLCK, zero));
}

/** The pts number of a master (TIOCGPTN). */
export function ptyNumber(master: number): number {
  const n = Buffer.alloc(4);
  check('ioctl(TIOCGPTN)', c.ioctlPtr(master, TIOCGPTN, n));
  return view(n).getUint32(0, true);
}

/**
 * Opens the peer through the master (TIOCGPTPEER): no path lookup, so it
 * is right even when /dev/pts is another devpts instance than the master's.
 */
export function openPtyPeer(master: number, flags: number = O.RDWR | O.NOCTTY): number {
  return check('ioctl(TIOCGPTPEER)', c.ioctlInt(master, TIOCGPTPEER, flags | O.CLOEXEC));
}

/** Opens a new master, unlocks it and opens its peer. */
export function openPty(options: OpenPtyOptions = {}): Pty {
  const ptmx = options.ptmx ?? '/dev/ptmx';
  const master = open(ptmx, O.RDWR | O.NOCTTY | (options.nonBlocking === false ? 0 : O.NONBLOCK), 0);
  try {
    unlockPty(master);
    const number = ptyNumber(master);
    const peer = openPtyPeer(master);
    const dir = ptmx.endsWith('/ptmx') && ptmx !== '/dev/ptmx' ? ptmx.slice(0, -'/ptmx'.length) : '/dev/pts';
    return { master, peer, number, path: `${dir}/${number}` };
  } catch (e) {
    closeQuietly(master);
    throw e;
  }
}

/** Closes both sides of a pty (each only if still open: pass -1 for one already closed). */
export function closePty(pty: Pty): void {
  closeQuietly(pty.master, pty.peer);
}

/**
 * Spawn-program steps that give the payload `fd` (a pty peer) as stdin,
 * stdout and stderr and make it the controlling terminal of a new session:
 * dup onto 0-2, setsid, ioctl(0, TIOCSCTTY, 0).
 */
export function attachTerminal(program: SpawnProgram, fd: number): SpawnProgram {
  program.stdio([fd, fd, fd]).setsid().ioctl(0, TIOCSCTTY, 0);
  return program;
}

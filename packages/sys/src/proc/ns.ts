import { CLONE, O } from '../constants.js';
import { InvalidArgumentError } from '../errors.js';
import { closeQuietly, open } from '../fd/fd.js';
import { check, lazyFunc } from '../ffi/libc.js';

/**
 * setns(2) for the calling thread. In Node that is the main thread: only
 * the namespaces whose change is per-thread are safe here (network, UTS,
 * IPC, the pid namespace for children); a user namespace refuses a
 * multi-threaded caller, and a mount namespace change would move every
 * thread's root (ARCHITECTURE.md §2). Use a spawn program for those.
 */

const c = {
  setns: lazyFunc('int setns(int fd, int nstype)'),
};

export function setns(fd: number, nstype: number): void {
  check('setns', c.setns(fd, nstype));
}

/** An fd of one namespace of a process: /proc/PID/ns/KIND (`net`, `pid`, `user`...). */
export function openNamespace(pid: number | 'self' | 'thread-self', kind: string): number {
  return open(`/proc/${pid}/ns/${kind}`, O.RDONLY);
}

/**
 * Runs `fn` on the main thread while it is in the network namespace of
 * `nsFd` (an ns fd or a pidfd), then switches back, also when `fn` throws.
 * Sockets created inside stay in that namespace for their whole life: the
 * way to talk netlink to a container. `fn` must be synchronous — the
 * thread must not return to the event loop while it is switched.
 */
export function withNetworkNamespace<T>(nsFd: number, fn: () => T): T {
  const own = openNamespace('thread-self', 'net');
  try {
    setns(nsFd, CLONE.NEWNET);
    try {
      return fn();
    } finally {
      setns(own, CLONE.NEWNET);
    }
  } finally {
    closeQuietly(own);
  }
}

const unshareFn = lazyFunc('int unshare(int flags)');

/**
 * unshare(2) for the calling (main) thread. A user namespace refuses a
 * multi-threaded process (EINVAL, measured), and a new mount namespace would
 * leave libuv's threads in the old one (async fs calls would see another
 * tree than sync ones), so both are refused here with an explanation: make
 * them in a spawn program instead.
 */
export function unshare(flags: number): void {
  if (flags & (CLONE.NEWUSER | CLONE.NEWNS))
    throw new InvalidArgumentError(
      'unshare of a user or mount namespace cannot be done in a Node process (it is multi-threaded); use a spawn program (SpawnProgram.unshare) instead',
    );
  check('unshare', unshareFn(flags));
}

import { SyscallError } from '../errors.js';
import { close, eventfd, read as readFd, setNonBlocking, writeAll } from '../fd/fd.js';
import { check, koffi, lazyFunc } from '../ffi/libc.js';
import { view } from '../view.js';

/**
 * One epoll set per process, waited on by a koffi async call (one thread of
 * the pool), so that netlink and packet sockets, pidfds and signalfds — none of
 * which Node can watch — wake callbacks on the main thread. Callbacks do
 * non-blocking I/O with synchronous calls. Level-triggered: a callback that
 * leaves data unread is called again.
 */

export const EPOLL = { IN: 0x1, PRI: 0x2, OUT: 0x4, ERR: 0x8, HUP: 0x10, RDHUP: 0x2000 } as const;

export type PollCallback = (events: number) => void;

// struct epoll_event is packed on x86_64 (12 bytes) and naturally aligned elsewhere (16).
const EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
const DATA_OFFSET = process.arch === 'x64' ? 4 : 8;
const MAX_EVENTS = 64;

const c = {
  epoll_create1: lazyFunc('int epoll_create1(int flags)'),
  epoll_ctl: lazyFunc('int epoll_ctl(int epfd, int op, int fd, const uint8_t *event)'),
  epoll_wait: lazyFunc('int epoll_wait(int epfd, uint8_t *events, int maxevents, int timeout)'),
  poll: lazyFunc('int poll(uint8_t *fds, unsigned long nfds, int timeout)'),
};
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLL_CLOEXEC = 0o2000000;

/**
 * Blocks this thread up to `ms` until `fd` is readable (or hung up): for an
 * answer due within microseconds (a child that was just released), which a
 * round trip through the poller's thread would delay by far more. False when
 * it is not (then wait through the poller). A signal ends it early (false).
 */
export function waitReadable(fd: number, ms: number): boolean {
  return waitReadableAny([fd], ms) !== 0;
}

/**
 * waitReadable for several fds: which of them are readable (or hung up), as
 * a bit mask (bit i for fds[i]); 0 after `ms` without, or on a signal.
 */
export function waitReadableAny(fds: readonly number[], ms: number): number {
  const pfds = Buffer.alloc(8 * fds.length);
  const v = view(pfds);
  fds.forEach((fd, i) => {
    v.setInt32(i * 8, fd, true);
    v.setInt16(i * 8 + 4, EPOLL.IN, true);
  });
  if (c.poll(pfds, fds.length, Math.max(0, Math.ceil(ms))) <= 0) return 0;
  let ready = 0;
  for (let i = 0; i < fds.length; i++) if (v.getInt16(i * 8 + 6, true) !== 0) ready |= 1 << i;
  return ready;
}

export class Poller {
  private readonly epfd: number;
  private readonly wakeFd: number;
  private readonly handlers = new Map<number, PollCallback>();
  private readonly events = new Uint8Array(new ArrayBuffer(EVENT_SIZE * MAX_EVENTS));
  private readonly eventsView = view(this.events);
  private waiting = false;
  private closed = false;

  constructor() {
    this.epfd = check('epoll_create1', c.epoll_create1(EPOLL_CLOEXEC));
    this.wakeFd = eventfd();
    this.ctl(EPOLL_CTL_ADD, this.wakeFd, EPOLL.IN);
  }

  /** Watches `fd` for `events` (EPOLL.IN by default). One callback per fd. */
  add(fd: number, callback: PollCallback, events: number = EPOLL.IN): void {
    if (this.closed) throw new Error('poller is closed');
    if (this.handlers.has(fd)) throw new Error(`fd ${fd} is already watched by the poller`);
    this.ctl(EPOLL_CTL_ADD, fd, events);
    this.handlers.set(fd, callback);
    this.arm();
  }

  modify(fd: number, events: number): void {
    this.ctl(EPOLL_CTL_MOD, fd, events);
  }

  /** Stops watching `fd` (call it before closing the fd). */
  remove(fd: number): void {
    if (!this.handlers.delete(fd)) return;
    c.epoll_ctl(this.epfd, EPOLL_CTL_DEL, fd, null);
    // Let the waiting thread return so an idle poller does not keep Node alive.
    if (this.handlers.size === 0 && this.waiting) this.wake();
  }

  /** Resolves once `fd` is readable (or hung up), then stops watching it. */
  readable(fd: number): Promise<number> {
    return new Promise((resolve) => {
      this.add(fd, (events) => {
        this.remove(fd);
        resolve(events);
      });
    });
  }

  get size(): number {
    return this.handlers.size;
  }

  private ctl(op: number, fd: number, events: number): void {
    const ev = Buffer.alloc(EVENT_SIZE);
    const v = view(ev);
    v.setUint32(0, events >>> 0, true);
    v.setBigUint64(DATA_OFFSET, BigInt(fd), true);
    if (c.epoll_ctl(this.epfd, op, fd, ev) < 0) throw new SyscallError('epoll_ctl', koffi.errno());
  }

  private wake(): void {
    const one = Buffer.alloc(8);
    view(one).setBigUint64(0, 1n, true);
    writeAll(this.wakeFd, one);
  }

  private arm(): void {
    if (this.waiting || this.handlers.size === 0) return;
    this.waiting = true;
    c.epoll_wait.async(this.epfd, this.events, MAX_EVENTS, -1, (err: unknown, n: number) => {
      this.waiting = false;
      if (err) throw err;
      if (n < 0) {
        // EINTR: just wait again.
        this.arm();
        return;
      }
      const ready: Array<[number, number]> = [];
      for (let i = 0; i < n; i++) {
        const events = this.eventsView.getUint32(i * EVENT_SIZE, true);
        const fd = Number(this.eventsView.getBigUint64(i * EVENT_SIZE + DATA_OFFSET, true));
        ready.push([fd, events]);
      }
      for (const [fd, events] of ready) {
        if (fd === this.wakeFd) {
          readFd(this.wakeFd, Buffer.alloc(8));
          continue;
        }
        const cb = this.handlers.get(fd);
        if (!cb) continue;
        try {
          cb(events);
        } catch (e) {
          // A throwing callback must not stop the poller for everyone else.
          queueMicrotask(() => {
            throw e;
          });
        }
      }
      this.arm();
    });
  }

  /** Closes the epoll set; only for tests and shutdown. */
  close(): void {
    this.closed = true;
    for (const fd of [...this.handlers.keys()]) this.remove(fd);
    if (this.waiting) this.wake();
    const done = () => {
      if (this.waiting) return setImmediate(done);
      close(this.epfd);
      close(this.wakeFd);
    };
    done();
  }
}

let shared: Poller | undefined;

/** The process's poller, created on first use. */
export function poller(): Poller {
  shared ??= new Poller();
  return shared;
}

/**
 * Reads `fd` (a pipe or socket) to EOF through the poller, then closes it.
 * For capturing a child's output without blocking a thread.
 */
export function readToEnd(fd: number, limit = 64 * 1024 * 1024): Promise<Buffer> {
  setNonBlocking(fd);
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise((resolve, reject) => {
    const finish = (err?: unknown) => {
      poller().remove(fd);
      close(fd);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    poller().add(fd, () => {
      try {
        for (;;) {
          const buf = Buffer.allocUnsafe(65536);
          const n = readFd(fd, buf);
          if (n < 0) return;
          if (n === 0) return finish();
          chunks.push(buf.subarray(0, n));
          size += n;
          if (size > limit) return finish(new Error(`readToEnd: more than ${limit} bytes`));
        }
      } catch (e) {
        finish(e);
      }
    });
  });
}

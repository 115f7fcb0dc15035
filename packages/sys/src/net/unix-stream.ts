import { SdError, SyscallError } from '../errors.js';
import { closeQuietly, read, writeSome } from '../fd/fd.js';
import { EPOLL, poller } from '../poller/poller.js';
import { AF, SO, SOCK, SOL, sockaddrUn } from './sockaddr.js';
import { connect, getsockoptInt, socket } from './socket.js';

const EINPROGRESS = 115;
const EAGAIN = 11;
const CHUNK = 64 * 1024;

/**
 * A connected AF_UNIX stream socket read and written through the poller:
 * what a short-lived client (a D-Bus call from a CLI) needs of node:net,
 * whose load alone costs a start ~3 ms of CPU (node:net, the stream
 * modules, dns). Chunks read go to `onData`; the end of the stream, a read
 * or write error, goes once to `onEnd`; `destroy()` stops both.
 */
export class UnixStream {
  readonly #fd: number;
  #out: Buffer[] = [];
  #onData: (d: Buffer) => void = () => {};
  #onEnd: (e: Error) => void = () => {};
  #done = false;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Connects to `path` ('@name' for an abstract socket); rejects with the errno (ENOENT, ECONNREFUSED...). */
  static async connect(path: string): Promise<UnixStream> {
    const addr = sockaddrUn(path);
    const fd = socket(AF.UNIX, SOCK.STREAM);
    try {
      try {
        connect(fd, addr);
      } catch (e) {
        // A listener with a full backlog: the connection completes (or fails) later.
        if (!(e instanceof SyscallError) || (e.errno !== EINPROGRESS && e.errno !== EAGAIN)) throw e;
        await new Promise<void>((resolve) => {
          poller().add(
            fd,
            () => {
              poller().remove(fd);
              resolve();
            },
            EPOLL.OUT,
          );
        });
        const err = getsockoptInt(fd, SOL.SOCKET, SO.ERROR);
        if (err !== 0) throw new SyscallError('connect', err, path);
      }
    } catch (e) {
      closeQuietly(fd);
      throw e instanceof SyscallError && e.path === undefined
        ? new SyscallError('connect', e.errno, path)
        : e;
    }
    const stream = new UnixStream(fd);
    poller().add(fd, (events) => stream.#ready(events), EPOLL.IN | EPOLL.RDHUP);
    return stream;
  }

  /** Where chunks and the end go from now on (data read before is not replayed). */
  setHandlers(onData: (d: Buffer) => void, onEnd: (e: Error) => void): void {
    this.#onData = onData;
    this.#onEnd = onEnd;
  }

  /** Queues `data`; written now if the socket takes it, else as it drains. */
  write(data: Buffer | string): void {
    if (this.#done) return;
    this.#out.push(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
    if (this.#out.length === 1) this.#flush();
  }

  /** Closes the socket; no handler is called after this. Safe to call twice. */
  destroy(): void {
    if (this.#done) return;
    this.#done = true;
    poller().remove(this.#fd);
    closeQuietly(this.#fd);
    this.#out = [];
  }

  #end(e: Error): void {
    if (this.#done) return;
    this.destroy();
    this.#onEnd(e);
  }

  #flush(): void {
    try {
      while (this.#out.length > 0) {
        const head = this.#out[0]!;
        const n = writeSome(this.#fd, head);
        if (n < 0) {
          poller().modify(this.#fd, EPOLL.IN | EPOLL.RDHUP | EPOLL.OUT);
          return;
        }
        if (n < head.length) this.#out[0] = head.subarray(n);
        else this.#out.shift();
      }
      poller().modify(this.#fd, EPOLL.IN | EPOLL.RDHUP);
    } catch (e) {
      this.#end(e as Error);
    }
  }

  #ready(events: number): void {
    if (events & EPOLL.OUT) this.#flush();
    if (this.#done || !(events & (EPOLL.IN | EPOLL.RDHUP | EPOLL.HUP | EPOLL.ERR))) return;
    try {
      for (;;) {
        const buf = Buffer.allocUnsafe(CHUNK);
        const n = read(this.#fd, buf);
        if (n < 0) return;
        if (n === 0) {
          this.#end(new SdError('ECONNRESET', 'The peer closed the connection'));
          return;
        }
        this.#onData(buf.subarray(0, n));
        if (this.#done) return;
      }
    } catch (e) {
      this.#end(e as Error);
    }
  }
}

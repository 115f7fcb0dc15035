import { chmodSync } from 'node:fs';
import {
  AF,
  bind,
  closeQuietly,
  poller,
  receivedCredentials,
  receivedFds,
  recvmsg,
  SO,
  SOCK,
  SOL,
  setsockopt,
  sockaddrUn,
  socket,
  unlinkIfExists,
} from '@sd/sys';

/**
 * The container side of sd_notify(3): an AF_UNIX datagram socket the payload
 * finds at /run/host/notify (NOTIFY_SOCKET). Messages are newline-separated
 * VAR=VALUE assignments; only those sent by the payload's own pid (as the
 * kernel reports it with SO_PASSCRED) count, as in systemd-nspawn.
 */

/** Where the payload finds the socket inside the container. */
export const NOTIFY_SOCKET_PATH = '/run/host/notify';

/** The largest notification accepted (systemd's limit is one page of text and more; 4 KiB is plenty). */
const MAX_MESSAGE = 8192;

export type NotifyFields = Record<string, string>;

/**
 * Parses one notification: VAR=VALUE lines, later assignments win. Lines
 * without '=' or with an invalid name are ignored; an empty message is {}.
 */
export function parseNotifyMessage(data: Buffer | string): NotifyFields {
  const text = typeof data === 'string' ? data : data.toString('utf8');
  const out: NotifyFields = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    if (!/^[A-Z_][A-Z0-9_]*$/.test(key)) continue;
    out[key] = line.slice(eq + 1);
  }
  return out;
}

export interface NotifyMessage {
  fields: NotifyFields;
  /** The sender's pid in our pid namespace. */
  pid: number;
}

export interface NotifyListener {
  /** A message from the payload. */
  onMessage(message: NotifyMessage): void;
  /** A message dropped: wrong sender, no credentials, truncated. For debug logging. */
  onIgnored?(reason: string): void;
}

/**
 * A bound, non-blocking notify socket, read through the poller (listen) or
 * on its owner's own wait (deliver). Create it before the container starts
 * (the path is bound into the container); only the payload's own messages
 * are delivered (see listen).
 */
export class NotifySocket {
  readonly path: string;
  readonly fd: number;
  #watching = false;
  #closed = false;

  constructor(path: string) {
    this.path = path;
    this.fd = socket(AF.UNIX, SOCK.DGRAM);
    try {
      bind(this.fd, sockaddrUn(path));
      setsockopt(this.fd, SOL.SOCKET, SO.PASSCRED, 1);
      // The container's root may be a shifted uid; only the payload's pid counts anyway.
      chmodSync(path, 0o666);
    } catch (e) {
      closeQuietly(this.fd);
      unlinkIfExists(path);
      throw e;
    }
  }

  /**
   * Starts delivering the messages the payload sends, through the poller.
   * `payloadPid` gives its pid at each message, so the socket can be watched
   * before the payload is forked: while it gives undefined, nothing counts.
   */
  listen(payloadPid: () => number | undefined, listener: NotifyListener): void {
    if (this.#closed || this.#watching) return;
    this.#watching = true;
    poller().add(this.fd, () => this.deliver(payloadPid, listener));
  }

  /** Delivers the messages waiting now, on this thread (listen's callback; a caller's own wait). */
  deliver(payloadPid: () => number | undefined, listener: NotifyListener): void {
    if (this.#closed) return;
    for (;;) {
      const msg = recvmsg(this.fd, { size: MAX_MESSAGE });
      if (!msg) return;
      // Nobody may pass us fds through here: close any that came.
      closeQuietly(...receivedFds(msg.control));
      const cred = receivedCredentials(msg.control);
      if (!cred) {
        listener.onIgnored?.('notification without credentials');
        continue;
      }
      const expected = payloadPid();
      if (cred.pid !== expected) {
        listener.onIgnored?.(
          `notification from pid ${cred.pid}, not the payload (${expected ?? 'not running yet'})`,
        );
        continue;
      }
      if (msg.length > MAX_MESSAGE) {
        listener.onIgnored?.(`notification of ${msg.length} bytes is too long`);
        continue;
      }
      listener.onMessage({ fields: parseNotifyMessage(msg.data), pid: cred.pid });
    }
  }

  /** Stops reading and closes the socket; the path is removed. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#watching) poller().remove(this.fd);
    closeQuietly(this.fd);
    unlinkIfExists(this.path);
  }
}

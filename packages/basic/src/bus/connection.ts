import type { Socket } from 'node:net';
import { SdError, UnixStream } from '@sd/sys';
import { BusWireError, marshal, Reader, unmarshal, Writer } from './wire.js';

/**
 * A small D-Bus client for command-line tools: method calls and their
 * replies over a unix socket, EXTERNAL authentication, Hello. It loads in a
 * fraction of dbus-next's time (measured: dbus-next's require alone is
 * ~36 ms of CPU), which is most of a short CLI's start. No signals, no
 * objects served, no unix fds: programs that need those use dbus-next
 * (connectBus).
 */

export interface BusCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: readonly unknown[];
  /** How long to wait for the reply; D-Bus's own default, 25 s, when not given. */
  timeoutMs?: number;
}

/** An error reply: `type` is the D-Bus error name and `text` its message, as on dbus-next's DBusError. */
export class BusCallFailed extends SdError {
  readonly type: string;
  readonly text: string;
  constructor(type: string, text: string) {
    super(type.split('.').pop() ?? 'EBUS', text);
    this.type = type;
    this.text = text;
  }
}

const METHOD_CALL = 1;
const METHOD_RETURN = 2;
const ERROR_REPLY = 3;
const MAX_MESSAGE = 128 * 1024 * 1024;
const DEFAULT_CALL_TIMEOUT_MS = 25_000;
const NO_REPLY_FLAG = 0;

/** What the connection needs of a socket: a UnixStream of @sd/sys, or a node:net Socket adapted. */
interface Transport {
  setHandlers(onData: (d: Buffer) => void, onEnd: (e: Error) => void): void;
  write(data: Buffer | string): void;
  destroy(): void;
}

function socketTransport(sock: Socket): Transport {
  let onData: (d: Buffer) => void = () => {};
  let onEnd: (e: Error) => void = () => {};
  sock.on('data', (d: Buffer) => onData(d));
  sock.on('error', (e) => onEnd(e));
  sock.on('close', () => onEnd(new SdError('ECONNRESET', 'The bus connection closed')));
  return {
    setHandlers(d, e) {
      onData = d;
      onEnd = e;
    },
    write: (d) => void sock.write(d),
    destroy: () => sock.destroy(),
  };
}

interface Pending {
  resolve(body: unknown[]): void;
  reject(e: Error): void;
}

/** The socket path of a unix:path= (or unix:abstract=) address; other transports are not supported. */
function socketOf(address: string): string {
  for (const part of address.split(';')) {
    const [kind, rest = ''] = part.split(/:(.*)/s, 2) as [string, string?];
    if (kind !== 'unix') continue;
    for (const kv of rest.split(',')) {
      const [k, v] = kv.split('=', 2) as [string, string?];
      const value = decodeURIComponent(v ?? '');
      if (k === 'path') return value;
      if (k === 'abstract') return `\0${value}`;
    }
  }
  throw new SdError(
    'EINVAL',
    `Unsupported bus address ${JSON.stringify(address)} (only unix:path= and unix:abstract=)`,
  );
}

export class BusConnection {
  readonly #sock: Transport;
  readonly #pending = new Map<number, Pending>();
  #serial = 0;
  #in: Buffer = Buffer.alloc(0);
  #closed: Error | undefined;
  /** The unique name the bus gave us. */
  uniqueName = '';

  private constructor(sock: Transport) {
    this.#sock = sock;
  }

  /** Connects, authenticates as this process's uid and says Hello; errors name the address. */
  static async connect(address: string, timeoutMs = 10_000): Promise<BusConnection> {
    return (await BusConnection.open(address, timeoutMs)).ready;
  }

  /**
   * connect() for a program whose first call follows at once: resolves as
   * soon as the socket is connected and the AUTH, BEGIN and Hello are
   * written, so that the call goes out with them instead of after Hello's
   * reply (one round trip less: most of what a CLI's one call waits for).
   * `ready` is what connect() resolves to: when the bus refuses us it rejects
   * with connect()'s error, and so does every call made meanwhile. A socket
   * that cannot be connected rejects open() itself.
   */
  static async open(
    address: string,
    timeoutMs = 10_000,
  ): Promise<{ conn: BusConnection; ready: Promise<BusConnection> }> {
    const path = socketOf(address);
    // Through @sd/sys's poller, not node:net: a CLI's start spares loading node:net and the stream modules.
    let stream: UnixStream;
    try {
      stream = await UnixStream.connect(path.startsWith('\0') ? `@${path.slice(1)}` : path);
    } catch (e) {
      throw new SdError('ECONNREFUSED', `Cannot connect to the bus at ${address}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const uid = String(process.geteuid?.() ?? 0);
    return BusConnection.#begin(
      stream,
      address,
      timeoutMs,
      `\0AUTH EXTERNAL ${Buffer.from(uid).toString('hex')}\r\n`,
    );
  }

  /**
   * Authenticates on a socket that is already connected (made elsewhere,
   * e.g. inside a machine's user namespace, whose credentials the bus sees),
   * with EXTERNAL and no identity: the bus takes the socket's own.
   */
  static fromConnectedSocket(sock: Socket, what: string, timeoutMs = 10_000): Promise<BusConnection> {
    return BusConnection.#begin(socketTransport(sock), what, timeoutMs, '\0AUTH EXTERNAL\r\nDATA\r\n').ready;
  }

  /** Writes the AUTH, BEGIN and Hello; `ready` settles with Hello's reply. */
  static #begin(
    sock: Transport,
    address: string,
    timeoutMs: number,
    auth: string,
  ): { conn: BusConnection; ready: Promise<BusConnection> } {
    // Without an identity the bus answers DATA first (the challenge), answered ahead with an empty DATA.
    const anonymous = !/AUTH EXTERNAL [0-9a-f]/.test(auth);
    const conn = new BusConnection(sock);
    const ready = new Promise<BusConnection>((resolve, reject) => {
      const fail = (e: Error) => {
        clearTimeout(timer);
        sock.destroy();
        const err =
          e instanceof SdError
            ? e
            : new SdError('ECONNREFUSED', `Cannot connect to the bus at ${address}: ${e.message}`);
        // The Hello sent ahead is answered no more: its wait ends here.
        conn.#fail(err);
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new SdError('ETIMEDOUT', `Timed out connecting to the bus at ${address}`)),
        timeoutMs,
      );
      let line = '';
      const onAuth = (d: Buffer) => {
        line += d.toString('latin1');
        if (anonymous && line.startsWith('DATA\r\n')) line = line.slice(6);
        const nl = line.indexOf('\r\n');
        if (nl < 0) {
          if (line.length > 4096) fail(new SdError('EPROTO', `The bus at ${address} sent no auth reply`));
          return;
        }
        if (!line.startsWith('OK ')) {
          fail(new SdError('EACCES', `The bus at ${address} refused authentication: ${line.slice(0, nl)}`));
          return;
        }
        // What follows the OK is the start of the message stream: Hello's reply.
        conn.#start(Buffer.from(line.slice(nl + 2), 'latin1'));
      };
      sock.setHandlers(onAuth, fail);
      // BEGIN and Hello go with the AUTH, not after its OK, as sd-bus sends
      // them (the D-Bus spec allows the pipelining; the bus answers the AUTH
      // and then reads on): one round trip less per connection.
      sock.write(`${auth}BEGIN\r\n`);
      conn
        .call({
          destination: 'org.freedesktop.DBus',
          path: '/org/freedesktop/DBus',
          interface: 'org.freedesktop.DBus',
          member: 'Hello',
        })
        .then(([name]) => {
          clearTimeout(timer);
          conn.uniqueName = String(name);
          resolve(conn);
        }, fail);
    });
    // Seen through connect() or open()'s caller; never an unhandled rejection of its own.
    ready.catch(() => undefined);
    return { conn, ready };
  }

  #start(rest: Buffer): void {
    this.#sock.setHandlers(
      (d) => this.#feed(d),
      (e) =>
        this.#fail(
          (e as SdError).code === 'ECONNRESET' ? new SdError('ECONNRESET', 'The bus connection closed') : e,
        ),
    );
    if (rest.length > 0) this.#feed(rest);
  }

  #fail(e: Error): void {
    this.#closed ??= e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }

  #feed(d: Buffer): void {
    this.#in = this.#in.length === 0 ? d : Buffer.concat([this.#in, d]);
    try {
      while (this.#in.length >= 16) {
        if (this.#in[0] !== 0x6c) throw new BusWireError('not little-endian');
        const bodyLen = this.#in.readUInt32LE(4);
        const fieldsLen = this.#in.readUInt32LE(12);
        const headerEnd = 16 + fieldsLen + ((8 - ((16 + fieldsLen) % 8)) % 8);
        const total = headerEnd + bodyLen;
        if (total > MAX_MESSAGE) throw new BusWireError(`message of ${total} bytes`);
        if (this.#in.length < total) return;
        const msg = this.#in.subarray(0, total);
        this.#in = this.#in.subarray(total);
        this.#dispatch(msg, headerEnd);
      }
    } catch (e) {
      this.#sock.destroy();
      this.#fail(e as Error);
    }
  }

  #dispatch(msg: Buffer, headerEnd: number): void {
    // The fixed header, signature yyyyuua(yv).
    const r = new Reader(msg.subarray(0, headerEnd));
    const [, type, , , , , fields] = [
      r.read({ t: 'y' }),
      r.read({ t: 'y' }),
      r.read({ t: 'y' }),
      r.read({ t: 'y' }),
      r.read({ t: 'u' }),
      r.read({ t: 'u' }),
      r.read({ t: 'a', of: { t: '(', of: [{ t: 'y' }, { t: 'v' }] } }),
    ] as [number, number, number, number, number, number, Array<[number, unknown]>];
    if (type !== METHOD_RETURN && type !== ERROR_REPLY) return;
    const field = (code: number) => fields.find(([c]) => c === code)?.[1];
    const replyTo = field(5);
    const p = typeof replyTo === 'number' ? this.#pending.get(replyTo) : undefined;
    if (!p) return;
    this.#pending.delete(replyTo as number);
    try {
      if (field(9) !== undefined)
        throw new BusWireError('the reply carries unix fds, which this client cannot take');
      const body = unmarshal(String(field(8) ?? ''), msg.subarray(headerEnd));
      if (type === ERROR_REPLY)
        p.reject(
          new BusCallFailed(String(field(4) ?? 'org.freedesktop.DBus.Error.Failed'), String(body[0] ?? '')),
        );
      else p.resolve(body);
    } catch (e) {
      p.reject(e as Error);
    }
  }

  /** Calls a method; resolves with the reply's body, rejects with BusCallFailed on an error reply. */
  call(c: BusCall): Promise<unknown[]> {
    if (this.#closed) return Promise.reject(this.#closed);
    const signature = c.signature ?? '';
    let body: Buffer;
    try {
      body = marshal(signature, c.body ?? []);
    } catch (e) {
      return Promise.reject(e);
    }
    const serial = ++this.#serial;
    const fields: Array<[number, { signature: string; value: unknown }]> = [
      [1, { signature: 'o', value: c.path }],
      [2, { signature: 's', value: c.interface }],
      [3, { signature: 's', value: c.member }],
      [6, { signature: 's', value: c.destination }],
    ];
    if (signature !== '') fields.push([8, { signature: 'g', value: signature }]);
    const w = new Writer();
    for (const [t, v] of [
      [{ t: 'y' }, 0x6c],
      [{ t: 'y' }, METHOD_CALL],
      [{ t: 'y' }, NO_REPLY_FLAG],
      [{ t: 'y' }, 1],
      [{ t: 'u' }, body.length],
      [{ t: 'u' }, serial],
      [{ t: 'a', of: { t: '(', of: [{ t: 'y' }, { t: 'v' }] } }, fields],
    ] as const)
      w.write(t as never, v);
    w.align(8);
    w.raw(body);
    const timeoutMs = c.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      // A peer that never answers (a hostile guest's bus) must not hold the caller forever.
      const timer = setTimeout(() => {
        this.#pending.delete(serial);
        reject(
          new SdError(
            'ETIMEDOUT',
            `No reply to ${c.interface}.${c.member} from ${c.destination} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const settled =
        <A>(f: (a: A) => void) =>
        (a: A) => {
          clearTimeout(timer);
          f(a);
        };
      this.#pending.set(serial, { resolve: settled(resolve), reject: settled(reject) });
      this.#sock.write(w.bytes());
    });
  }

  close(): void {
    this.#fail(new SdError('ECONNRESET', 'The bus connection was closed'));
    this.#sock.destroy();
  }
}

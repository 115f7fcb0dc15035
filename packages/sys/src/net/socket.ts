import { InvalidArgumentError, SyscallError } from '../errors.js';
import { addressOf, check, koffi, lazyFunc } from '../ffi/libc.js';
import { view } from '../view.js';
import { type Cmsg, decodeCmsgs, encodeCmsgs } from './cmsg.js';
import { MSG, SOCK } from './sockaddr.js';

const c = {
  socket: lazyFunc('int socket(int domain, int type, int protocol)'),
  socketpair: lazyFunc('int socketpair(int domain, int type, int protocol, _Out_ int *sv)'),
  bind: lazyFunc('int bind(int fd, const uint8_t *addr, uint32_t len)'),
  connect: lazyFunc('int connect(int fd, const uint8_t *addr, uint32_t len)'),
  getsockname: lazyFunc('int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *len)'),
  setsockopt: lazyFunc('int setsockopt(int fd, int level, int name, const uint8_t *val, uint32_t len)'),
  getsockopt: lazyFunc(
    'int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)',
  ),
  sendto: lazyFunc(
    'long sendto(int fd, const uint8_t *buf, size_t len, int flags, const uint8_t *addr, uint32_t alen)',
  ),
  recvfrom: lazyFunc(
    'long recvfrom(int fd, _Out_ uint8_t *buf, size_t len, int flags, _Out_ uint8_t *addr, _Inout_ uint32_t *alen)',
  ),
  sendmsg: lazyFunc('long sendmsg(int fd, uint8_t *msg, int flags)'),
  recvmsg: lazyFunc('long recvmsg(int fd, uint8_t *msg, int flags)'),
};

const EAGAIN = 11;
const EINTR = 4;

/** A socket, always SOCK_CLOEXEC|SOCK_NONBLOCK: it is read through the poller and never leaks into children. */
export function socket(family: number, type: number, protocol = 0): number {
  return check('socket', c.socket(family, type | SOCK.CLOEXEC | SOCK.NONBLOCK, protocol));
}

/** A connected pair (AF_UNIX), close-on-exec; non-blocking unless `blocking`. */
export function socketpair(family: number, type: number, protocol = 0, blocking = false): [number, number] {
  const sv = [0, 0];
  check(
    'socketpair',
    c.socketpair(family, type | SOCK.CLOEXEC | (blocking ? 0 : SOCK.NONBLOCK), protocol, sv),
  );
  return [sv[0]!, sv[1]!];
}

export function bind(fd: number, addr: Buffer): void {
  check('bind', c.bind(fd, addr, addr.length));
}

/** connect(2); on a non-blocking stream socket EINPROGRESS is thrown as SyscallError like any errno. */
export function connect(fd: number, addr: Buffer): void {
  check('connect', c.connect(fd, addr, addr.length));
}

/** The raw sockaddr the socket is bound to (decode with parseSockaddr). */
export function getsockname(fd: number): Buffer {
  const b = Buffer.alloc(128);
  const len = [b.length];
  check('getsockname', c.getsockname(fd, b, len));
  return b.subarray(0, len[0]);
}

/** setsockopt with an int (the usual case) or raw bytes. */
export function setsockopt(fd: number, level: number, name: number, value: number | boolean | Buffer): void {
  let b: Buffer;
  if (Buffer.isBuffer(value)) b = value;
  else {
    b = Buffer.alloc(4);
    view(b).setInt32(0, typeof value === 'boolean' ? Number(value) : value, true);
  }
  check('setsockopt', c.setsockopt(fd, level, name, b, b.length));
}

export function getsockoptInt(fd: number, level: number, name: number): number {
  const b = Buffer.alloc(4);
  check('getsockopt', c.getsockopt(fd, level, name, b, [4]));
  return view(b).getInt32(0, true);
}

/** getsockopt returning up to `size` raw bytes. */
export function getsockoptBuffer(fd: number, level: number, name: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  const len = [size];
  check('getsockopt', c.getsockopt(fd, level, name, b, len));
  return b.subarray(0, len[0]);
}

/** Runs a send/recv call; -1 for EAGAIN (try again when the poller says so), retries EINTR. */
function io(name: string, call: () => number | bigint): number {
  for (;;) {
    const n = Number(call());
    if (n >= 0) return n;
    const errno = koffi.errno();
    if (errno === EINTR) continue;
    if (errno === EAGAIN) return -1;
    throw new SyscallError(name, errno);
  }
}

/** Sends one datagram (to `addr` when given); the count sent, or -1 when the socket would block. */
export function sendto(fd: number, data: Buffer, addr?: Buffer, flags: number = MSG.NOSIGNAL): number {
  return io('sendto', () => c.sendto(fd, data, data.length, flags, addr ?? null, addr?.length ?? 0));
}

export interface Received {
  data: Buffer;
  /** The sender's raw sockaddr (decode with parseSockaddr). */
  from: Buffer;
  /** With MSG.TRUNC: the real length of the datagram, which may exceed data.length. */
  length: number;
}

/**
 * Receives one datagram into a buffer of `size`; null when none is waiting.
 * With `into` (at least `size` bytes, reused by a caller that reads often)
 * no buffer is allocated: `data` is then a view of `into`, valid until the
 * next call that is given it.
 */
export function recvfrom(fd: number, size = 65536, flags = 0, into?: Buffer): Received | null {
  if (into !== undefined && into.length < size)
    throw new InvalidArgumentError(`recvfrom: a buffer of ${into.length} bytes for ${size}`);
  const buf = into ?? Buffer.alloc(size);
  const addr = Buffer.alloc(128);
  const alen = [addr.length];
  const n = io('recvfrom', () => c.recvfrom(fd, buf, size, flags, addr, alen));
  if (n < 0) return null;
  return { data: buf.subarray(0, Math.min(n, size)), from: addr.subarray(0, alen[0]), length: n };
}

// struct msghdr on 64-bit Linux: name(8) namelen(4)+pad iov(8) iovlen(8) control(8) controllen(8) flags(4)+pad.
const MSGHDR_SIZE = 56;

/** Memory the kernel may write through a pointer we pass inside a struct: off the V8 heap so it cannot move. */
function stable(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size));
}

/** Makes V8 move a small typed array's bytes off its heap before we take their address. */
function pin(b: Buffer): Buffer {
  void b.buffer;
  return b;
}

function iovecs(bufs: readonly Buffer[]): Buffer {
  const iov = stable(Math.max(16, bufs.length * 16));
  bufs.forEach((b, i) => {
    iov.writeBigUInt64LE(b.length ? addressOf(pin(b)) : 0n, i * 16);
    iov.writeBigUInt64LE(BigInt(b.length), i * 16 + 8);
  });
  return iov;
}

export interface OutgoingMessage {
  /** The destination sockaddr for unconnected sockets. */
  to?: Buffer;
  /** The bytes, gathered from one or more buffers. */
  data: Buffer | readonly Buffer[];
  /** Ancillary data (rightsCmsg, credentialsCmsg, pktinfoCmsg...). */
  control?: readonly Cmsg[];
}

/** sendmsg(2): the count sent, or -1 when the socket would block. */
export function sendmsg(fd: number, msg: OutgoingMessage, flags: number = MSG.NOSIGNAL): number {
  const bufs = Buffer.isBuffer(msg.data) ? [msg.data] : msg.data;
  const iov = iovecs(bufs);
  const name = msg.to ? pin(msg.to) : undefined;
  const control = msg.control?.length ? pin(encodeCmsgs(msg.control)) : undefined;
  const hdr = stable(MSGHDR_SIZE);
  if (name) {
    hdr.writeBigUInt64LE(addressOf(name), 0);
    hdr.writeUInt32LE(name.length, 8);
  }
  hdr.writeBigUInt64LE(addressOf(iov), 16);
  hdr.writeBigUInt64LE(BigInt(bufs.length), 24);
  if (control) {
    hdr.writeBigUInt64LE(addressOf(control), 32);
    hdr.writeBigUInt64LE(BigInt(control.length), 40);
  }
  const n = io('sendmsg', () => c.sendmsg(fd, hdr, flags));
  // Keep everything the header points at alive until here.
  void [bufs, iov, name, control];
  return n;
}

export interface ReceiveOptions {
  /** Data buffer size (default 64 KiB). */
  size?: number;
  /** Control buffer size (default 512 bytes: room for a few fds, creds and pktinfo). */
  controlSize?: number;
  /** recvmsg flags; MSG_CMSG_CLOEXEC is always added, so received fds never leak into children. */
  flags?: number;
}

export interface IncomingMessage {
  data: Buffer;
  /** The sender's raw sockaddr (empty for connected sockets). */
  from: Buffer;
  control: Cmsg[];
  /** msg_flags: MSG.TRUNC, MSG.CTRUNC... */
  flags: number;
  /** The real datagram length when MSG.TRUNC was passed, else data.length. */
  length: number;
}

/** recvmsg(2): one message, or null when none is waiting. */
export function recvmsg(fd: number, options: ReceiveOptions = {}): IncomingMessage | null {
  const size = options.size ?? 65536;
  const data = stable(size);
  const name = stable(128);
  const control = stable(options.controlSize ?? 512);
  const iov = iovecs([data]);
  const hdr = stable(MSGHDR_SIZE);
  hdr.writeBigUInt64LE(addressOf(name), 0);
  hdr.writeUInt32LE(name.length, 8);
  hdr.writeBigUInt64LE(addressOf(iov), 16);
  hdr.writeBigUInt64LE(1n, 24);
  hdr.writeBigUInt64LE(addressOf(control), 32);
  hdr.writeBigUInt64LE(BigInt(control.length), 40);
  const n = io('recvmsg', () => c.recvmsg(fd, hdr, (options.flags ?? 0) | MSG.CMSG_CLOEXEC));
  if (n < 0) return null;
  const namelen = hdr.readUInt32LE(8);
  const controllen = Number(hdr.readBigUInt64LE(40));
  return {
    data: data.subarray(0, Math.min(n, size)),
    from: name.subarray(0, Math.min(namelen, name.length)),
    control: decodeCmsgs(control, Math.min(controllen, control.length)),
    flags: hdr.readInt32LE(48),
    length: n,
  };
}

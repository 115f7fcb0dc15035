import { InvalidArgumentError, SyscallError } from '../errors.js';
import { addressOf, koffi, lazyFunc } from '../ffi/libc.js';
import { encodeBpf, type Insn } from '../seccomp/bpf.js';
import { SO, SOL } from './sockaddr.js';
import { setsockopt } from './socket.js';

/**
 * Sockets tied to one network device: the index of a link by name (in the
 * calling thread's network namespace), SO_BINDTODEVICE, and classic BPF
 * socket filters (SO_ATTACH_FILTER) so that a packet socket wakes us only
 * for the frames it is for.
 */

const c = {
  if_nametoindex: lazyFunc('unsigned int if_nametoindex(const char *name)'),
};

/** The ifindex of link `name` in the calling thread's network namespace. */
export function ifNameToIndex(name: string): number {
  if (!name || Buffer.byteLength(name) > 15) throw new InvalidArgumentError(`bad interface name '${name}'`);
  const i = c.if_nametoindex(name) as number;
  if (i === 0) throw new SyscallError('if_nametoindex', koffi.errno() || 19 /* ENODEV */, name);
  return i;
}

/** SO_BINDTODEVICE: the socket sends and receives on `ifname` only (needs CAP_NET_RAW). */
export function bindToDevice(fd: number, ifname: string): void {
  if (!ifname || Buffer.byteLength(ifname) > 15)
    throw new InvalidArgumentError(`bad interface name '${ifname}'`);
  setsockopt(fd, SOL.SOCKET, SO.BINDTODEVICE, Buffer.from(`${ifname}\0`));
}

/** SO_ATTACH_FILTER with a classic BPF program (struct sock_fprog). */
export function attachSocketFilter(fd: number, insns: readonly Insn[]): void {
  const code = Buffer.from(new ArrayBuffer(insns.length * 8));
  encodeBpf(insns).copy(code);
  const prog = Buffer.alloc(16);
  prog.writeUInt16LE(insns.length, 0);
  prog.writeBigUInt64LE(addressOf(code), 8);
  setsockopt(fd, SOL.SOCKET, SO.ATTACH_FILTER, prog);
  void code;
}

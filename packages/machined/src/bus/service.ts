import { readFileSync } from 'node:fs';
import { closeQuietly } from '@sd/sys';
import { dbus, type Message, type MessageBus } from './dbus.js';
import { BusError, DBUS_ERROR, toBusError } from './errors.js';
import { introspectXml } from './introspect.js';
import { splitSignature } from './signature.js';
import type { CallContext, InterfaceSpec } from './types.js';

/**
 * A small object server on dbus-next's low-level message API: it answers
 * every method call itself (so that handlers see the sender, return unix
 * fds, and throw exact error names), with Introspectable, Properties and
 * Peer for each object. Objects come from sources that can be looked up by
 * path: machines and images come and go without re-exporting anything.
 */

export interface ObjectSource {
  /** The interfaces of the object at `path`, or undefined when it has none here. */
  lookup(path: string): readonly InterfaceSpec[] | undefined;
  /** Every object path the source serves now (for the child nodes of introspection). */
  paths(): Iterable<string>;
}

const METHOD_CALL = 1;
const NO_REPLY_EXPECTED = 1;
const PROPERTIES = 'org.freedesktop.DBus.Properties';
const INTROSPECTABLE = 'org.freedesktop.DBus.Introspectable';
const PEER = 'org.freedesktop.DBus.Peer';

export class BusService {
  readonly bus: MessageBus;
  readonly #sources: ObjectSource[] = [];
  readonly #uids = new Map<string, number>();
  #handler: ((msg: Message) => boolean) | undefined;
  /** Called with what a handler threw that is not a BusError (for the daemon's log). */
  onUnexpectedError: ((e: unknown, member: string) => void) | undefined;

  constructor(bus: MessageBus) {
    this.bus = bus;
  }

  /** A fixed object. */
  addObject(path: string, interfaces: readonly InterfaceSpec[]): void {
    this.addSource({ lookup: (p) => (p === path ? interfaces : undefined), paths: () => [path] });
  }

  addSource(source: ObjectSource): void {
    this.#sources.push(source);
  }

  start(): void {
    if (this.#handler) return;
    this.#handler = (msg: Message) => {
      if (msg.type !== METHOD_CALL) return false;
      void this.#dispatch(msg);
      return true;
    };
    this.bus.addMethodHandler(this.#handler);
  }

  stop(): void {
    if (this.#handler) this.bus.removeMethodHandler(this.#handler);
    this.#handler = undefined;
  }

  emitSignal(path: string, iface: string, member: string, signature: string, body: unknown[]): void {
    this.bus.send(dbus.Message.newSignal(path, iface, member, signature, body));
  }

  /** The uid of a bus peer, asked from the bus once per unique name (unique names are never reused). */
  async uidOf(sender: string): Promise<number> {
    const known = this.#uids.get(sender);
    if (known !== undefined) return known;
    const reply = await this.bus.call(
      new dbus.Message({
        destination: 'org.freedesktop.DBus',
        path: '/org/freedesktop/DBus',
        interface: 'org.freedesktop.DBus',
        member: 'GetConnectionUnixUser',
        signature: 's',
        body: [sender],
      }),
    );
    const uid = Number(reply?.body[0]);
    if (this.#uids.size > 4096) this.#uids.clear();
    this.#uids.set(sender, uid);
    return uid;
  }

  #lookup(path: string): readonly InterfaceSpec[] | undefined {
    for (const s of this.#sources) {
      const found = s.lookup(path);
      if (found) return found;
    }
    return undefined;
  }

  #children(path: string): string[] {
    const prefix = path === '/' ? '/' : `${path}/`;
    const out = new Set<string>();
    for (const s of this.#sources)
      for (const p of s.paths())
        if (p.startsWith(prefix) && p !== path) out.add(p.slice(prefix.length).split('/')[0]!);
    return [...out].sort();
  }

  async #dispatch(msg: Message): Promise<void> {
    const fds: number[] = [];
    const ctx: CallContext = {
      sender: msg.sender,
      path: msg.path,
      senderUid: () => this.uidOf(msg.sender),
      closeAfterReply: (fd) => fds.push(fd),
    };
    try {
      const { signature, body } = await this.#call(msg, ctx);
      if (!(msg.flags & NO_REPLY_EXPECTED)) this.bus.send(dbus.Message.newMethodReturn(msg, signature, body));
    } catch (e) {
      const { name, message } = toBusError(e);
      if (!(e instanceof BusError)) this.onUnexpectedError?.(e, msg.member);
      if (!(msg.flags & NO_REPLY_EXPECTED)) this.bus.send(dbus.Message.newError(msg as never, name, message));
    } finally {
      if (fds.length) this.#closeWhenSent(fds);
    }
  }

  async #call(msg: Message, ctx: CallContext): Promise<{ signature: string; body: unknown[] }> {
    const path = msg.path;
    const ifaces = this.#lookup(path);
    const sig = msg.signature ?? '';
    const args = msg.body ?? [];
    const none = { signature: '', body: [] };
    if (msg.interface === INTROSPECTABLE && msg.member === 'Introspect') {
      const children = this.#children(path);
      if (!ifaces && !children.length && path !== '/')
        throw new BusError(DBUS_ERROR.UnknownObject, `Unknown object '${path}'.`);
      return { signature: 's', body: [introspectXml(ifaces ?? [], children)] };
    }
    if (msg.interface === PEER) {
      if (msg.member === 'Ping') return none;
      if (msg.member === 'GetMachineId')
        return { signature: 's', body: [readFileSync('/etc/machine-id', 'utf8').trim()] };
    }
    if (!ifaces) throw new BusError(DBUS_ERROR.UnknownObject, `Unknown object '${path}'.`);
    if (msg.interface === PROPERTIES) return this.#properties(msg.member, sig, args, ifaces);
    for (const iface of ifaces) {
      if (msg.interface && msg.interface !== iface.name) continue;
      const m = iface.methods?.[msg.member];
      if (!m) continue;
      if (sig !== (m.in ?? ''))
        throw new BusError(
          DBUS_ERROR.InvalidArgs,
          `Invalid arguments '${sig}' to call ${iface.name}.${msg.member}(), expecting '${m.in ?? ''}'.`,
        );
      const result = await m.handler(ctx, ...args);
      const outTypes = splitSignature(m.out ?? '');
      const body = outTypes.length === 0 ? [] : outTypes.length === 1 ? [result] : (result as unknown[]);
      return { signature: m.out ?? '', body };
    }
    if (msg.interface && !ifaces.some((i) => i.name === msg.interface))
      throw new BusError(DBUS_ERROR.UnknownInterface, `Unknown interface '${msg.interface}'.`);
    throw new BusError(
      DBUS_ERROR.UnknownMethod,
      `Unknown method '${msg.member}' or interface '${msg.interface}'.`,
    );
  }

  async #properties(
    member: string,
    sig: string,
    args: unknown[],
    ifaces: readonly InterfaceSpec[],
  ): Promise<{ signature: string; body: unknown[] }> {
    const find = (name: unknown) => {
      const iface = ifaces.find((i) => i.name === name);
      if (!iface) throw new BusError(DBUS_ERROR.UnknownInterface, `Unknown interface '${String(name)}'.`);
      return iface;
    };
    const variant = (type: string, v: unknown) => new dbus.Variant(type, v);
    if (member === 'Get' && sig === 'ss') {
      const p = find(args[0]).properties?.[args[1] as string];
      if (!p) throw new BusError(DBUS_ERROR.UnknownProperty, `Unknown property '${String(args[1])}'.`);
      return { signature: 'v', body: [variant(p.type, await p.get())] };
    }
    if (member === 'GetAll' && sig === 's') {
      const all: Record<string, unknown> = {};
      const list = args[0] === '' ? ifaces : [find(args[0])];
      for (const i of list)
        for (const [name, p] of Object.entries(i.properties ?? {}))
          all[name] = variant(p.type, await p.get());
      return { signature: 'a{sv}', body: [all] };
    }
    if (member === 'Set' && sig === 'ssv') {
      const p = find(args[0]).properties?.[args[1] as string];
      if (!p) throw new BusError(DBUS_ERROR.UnknownProperty, `Unknown property '${String(args[1])}'.`);
      throw new BusError(DBUS_ERROR.PropertyReadOnly, `Property '${String(args[1])}' is not writable.`);
    }
    throw new BusError(DBUS_ERROR.UnknownMethod, `Unknown method '${member}' with signature '${sig}'.`);
  }

  /**
   * dbus-next writes a message to its socket synchronously unless earlier
   * writes are still queued; the kernel holds its own reference to a passed
   * fd from sendmsg on. So our copies can go once the stream has no backlog.
   */
  #closeWhenSent(fds: number[]): void {
    const stream = (
      this.bus as unknown as {
        _connection?: { stream?: NodeJS.WritableStream & { writableLength?: number } };
      }
    )._connection?.stream;
    if (!stream?.writableLength) {
      closeQuietly(...fds);
      return;
    }
    stream.once('drain', () => closeQuietly(...fds));
  }
}

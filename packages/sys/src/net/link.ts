import { InvalidArgumentError, SyscallError } from '../errors.js';
import { closeQuietly } from '../fd/fd.js';
import { openNamespace, withNetworkNamespace } from '../proc/ns.js';
import { type Attr, attr, encodeAttrs, NETLINK, NetlinkSocket, NLM_F, type NlMsg } from './netlink.js';
import {
  encodeIfinfomsg,
  IFF,
  IFLA,
  IFLA_INFO,
  IFLA_MACVLAN,
  type LinkInfo,
  MACVLAN_MODE,
  parseLink,
  parseMac,
  RTM,
  VETH_INFO,
} from './rtnetlink.js';

/**
 * Links over rtnetlink: create veth pairs, bridges and macvlans, move them
 * between network namespaces, rename, set MAC/MTU/master/up, delete. Every
 * call takes the NETLINK_ROUTE socket of the namespace to act in (see
 * openRouteSocket); a failure is a SyscallError naming the link and the
 * kernel's own explanation when it gave one.
 */

/** A network namespace to put a link in: an fd of it, a pidfd, or a pid. */
export type NetnsRef = { fd: number } | { pidfd: number } | { pid: number };

/** A link by index or by name. */
export type LinkRef = number | string;

/**
 * A NETLINK_ROUTE socket that lives in the network namespace of `netns`
 * (an ns fd or a pidfd), or in ours. The namespace is switched only on the
 * main thread and only for the socket() call.
 */
export function openRouteSocket(netns?: number, options: { groups?: number } = {}): NetlinkSocket {
  if (netns === undefined) return new NetlinkSocket(NETLINK.ROUTE, options);
  return withNetworkNamespace(netns, () => new NetlinkSocket(NETLINK.ROUTE, options));
}

/** An fd of the network namespace of a process given by pidfd (setns accepts pidfds). */
export function netnsFdOfPidfd(pidfd: number): number {
  return withNetworkNamespace(pidfd, () => openNamespace('thread-self', 'net'));
}

function netnsAttr(ns: NetnsRef): { attr: Attr; close?: number } {
  if ('pid' in ns) return { attr: attr.u32(IFLA.NET_NS_PID, ns.pid) };
  if ('fd' in ns) return { attr: attr.u32(IFLA.NET_NS_FD, ns.fd) };
  const fd = netnsFdOfPidfd(ns.pidfd);
  return { attr: attr.u32(IFLA.NET_NS_FD, fd), close: fd };
}

function checkName(name: string): void {
  const len = Buffer.byteLength(name);
  if (len === 0 || len > 15 || name === '.' || name === '..' || /[/:\s]/.test(name))
    throw new InvalidArgumentError(`Invalid interface name: '${name}'`);
}

/** Re-throws a netlink error with the operation and link in its message. */
async function call(
  sock: NetlinkSocket,
  what: string,
  type: number,
  flags: number,
  payload: Buffer,
): Promise<NlMsg[]> {
  try {
    return await sock.request(type, flags, payload);
  } catch (e) {
    if (e instanceof SyscallError) {
      const err = new SyscallError(what, e.errno, undefined, { cause: e });
      // Keep the kernel's extended-ack text ("... : Invalid MTU").
      const ext = /: E[A-Z0-9]+ \([^)]*\)(: .*)$/.exec(e.message)?.[1];
      if (ext) err.message += ext;
      throw err;
    }
    throw e;
  }
}

function linkSelector(link: LinkRef): { index: number; attrs: Attr[] } {
  if (typeof link === 'number') return { index: link, attrs: [] };
  checkName(link);
  return { index: 0, attrs: [attr.string(IFLA.IFNAME, link)] };
}

export interface LinkSettings {
  /** aa:bb:cc:dd:ee:ff */
  address?: string;
  mtu?: number;
  /** Index of the bridge to become a port of; 0 leaves the bridge. */
  master?: number;
  /** IFLA_IFALIAS: free text, e.g. who made the link. */
  alias?: string;
  up?: boolean;
}

function settingAttrs(s: LinkSettings): Attr[] {
  const out: Attr[] = [];
  if (s.address !== undefined) out.push({ type: IFLA.ADDRESS, value: parseMac(s.address) });
  if (s.mtu !== undefined) {
    if (!Number.isInteger(s.mtu) || s.mtu < 68 || s.mtu > 65535)
      throw new InvalidArgumentError(`Invalid MTU: ${s.mtu}`);
    out.push(attr.u32(IFLA.MTU, s.mtu));
  }
  if (s.master !== undefined) out.push(attr.u32(IFLA.MASTER, s.master));
  if (s.alias !== undefined) out.push({ type: IFLA.IFALIAS, value: Buffer.from(s.alias) });
  return out;
}

export type LinkKind =
  | { kind: 'veth'; peer: { name: string; netns?: NetnsRef } & LinkSettings }
  | { kind: 'bridge' }
  | { kind: 'macvlan'; parent: number; mode?: keyof typeof MACVLAN_MODE }
  | { kind: 'ipvlan'; parent: number };

export type CreateLink = { name: string; netns?: NetnsRef } & LinkSettings & LinkKind;

/** Creates a link (RTM_NEWLINK with NLM_F_CREATE|NLM_F_EXCL); resolves with its index in `sock`'s namespace, or 0 when it was made in another namespace. */
export async function createLink(sock: NetlinkSocket, spec: CreateLink): Promise<number> {
  checkName(spec.name);
  const toClose: number[] = [];
  try {
    const attrs: Attr[] = [attr.string(IFLA.IFNAME, spec.name), ...settingAttrs(spec)];
    if (spec.netns) {
      const n = netnsAttr(spec.netns);
      attrs.push(n.attr);
      if (n.close !== undefined) toClose.push(n.close);
    }
    const info: Attr[] = [attr.string(IFLA_INFO.KIND, spec.kind)];
    if (spec.kind === 'veth') {
      checkName(spec.peer.name);
      if (spec.peer.up && spec.peer.netns)
        throw new InvalidArgumentError(
          `The peer ${spec.peer.name} of a veth in another network namespace is brought up there, with a socket of that namespace`,
        );
      const peer: Attr[] = [attr.string(IFLA.IFNAME, spec.peer.name), ...settingAttrs(spec.peer)];
      if (spec.peer.netns) {
        const n = netnsAttr(spec.peer.netns);
        peer.push(n.attr);
        if (n.close !== undefined) toClose.push(n.close);
      }
      // VETH_INFO_PEER carries a whole ifinfomsg followed by the peer's attributes.
      // The peer cannot be brought up in the same message: it opens before it knows its other end (ENOTCONN).
      const peerValue = Buffer.concat([encodeIfinfomsg(), encodeAttrs(peer)]);
      info.push({ type: IFLA_INFO.DATA, value: [{ type: VETH_INFO.PEER, value: peerValue }] });
    } else if (spec.kind === 'ipvlan') {
      attrs.push(attr.u32(IFLA.LINK, spec.parent));
    } else if (spec.kind === 'macvlan') {
      attrs.push(attr.u32(IFLA.LINK, spec.parent));
      info.push({
        type: IFLA_INFO.DATA,
        value: [
          attr.u32(IFLA_MACVLAN.MODE, MACVLAN_MODE[(spec.mode ?? 'BRIDGE') as keyof typeof MACVLAN_MODE]),
        ],
      });
    }
    attrs.push({ type: IFLA.LINKINFO, value: info });
    const payload = Buffer.concat([encodeIfinfomsg(peerFlags(spec)), encodeAttrs(attrs)]);
    await call(sock, `create ${spec.kind} ${spec.name}`, RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, payload);
  } finally {
    closeQuietly(...toClose);
  }
  if (spec.kind === 'veth' && spec.peer.up && !spec.peer.netns)
    await setLink(sock, spec.peer.name, { up: true });
  if (spec.netns) return 0;
  const index = (await getLink(sock, spec.name))?.index ?? 0;
  // The kernel ignores IFLA_IFALIAS when it creates a link: set it on the new link.
  if (spec.alias !== undefined && index) await setLink(sock, index, { alias: spec.alias });
  return index;
}

function peerFlags(s: LinkSettings): { flags: number; change: number } {
  return s.up === undefined ? { flags: 0, change: 0 } : { flags: s.up ? IFF.UP : 0, change: IFF.UP };
}

/** Changes a link: MAC, MTU, master, alias, up/down; `name` renames it (the kernel wants it down for that). */
export async function setLink(
  sock: NetlinkSocket,
  link: LinkRef,
  s: LinkSettings & { name?: string },
): Promise<void> {
  const sel = linkSelector(link);
  const attrs = [...sel.attrs, ...settingAttrs(s)];
  if (s.name !== undefined) {
    checkName(s.name);
    if (typeof link === 'string')
      throw new InvalidArgumentError('Renaming a link needs its index, not its name');
    attrs.push(attr.string(IFLA.IFNAME, s.name));
  }
  const payload = Buffer.concat([encodeIfinfomsg({ index: sel.index, ...peerFlags(s) }), encodeAttrs(attrs)]);
  await call(sock, `set link ${link}`, RTM.NEWLINK, 0, payload);
}

/** Moves a link into another network namespace, optionally renaming it there. */
export async function moveLink(
  sock: NetlinkSocket,
  link: LinkRef,
  netns: NetnsRef,
  newName?: string,
): Promise<void> {
  const sel = linkSelector(link);
  const n = netnsAttr(netns);
  try {
    const attrs = [...sel.attrs, n.attr];
    if (newName !== undefined) {
      checkName(newName);
      if (typeof link === 'string')
        throw new InvalidArgumentError('Renaming a link while moving it needs its index, not its name');
      attrs.push(attr.string(IFLA.IFNAME, newName));
    }
    const payload = Buffer.concat([encodeIfinfomsg({ index: sel.index }), encodeAttrs(attrs)]);
    await call(sock, `move link ${link} to another network namespace`, RTM.NEWLINK, 0, payload);
  } finally {
    closeQuietly(n.close);
  }
}

/** Adds an alternative name (IFLA_ALT_IFNAME, up to 127 bytes) to a link. */
export async function addAltName(sock: NetlinkSocket, link: number, altName: string): Promise<void> {
  if (Buffer.byteLength(altName) > 127 || altName === '')
    throw new InvalidArgumentError(`Invalid alternative interface name: '${altName}'`);
  const payload = Buffer.concat([
    encodeIfinfomsg({ index: link }),
    encodeAttrs([{ type: IFLA.PROP_LIST, value: [attr.string(IFLA.ALT_IFNAME, altName)] }]),
  ]);
  await call(
    sock,
    `add alternative name ${altName} to link ${link}`,
    RTM.NEWLINKPROP,
    NLM_F.CREATE | NLM_F.EXCL,
    payload,
  );
}

/** Deletes a link (both ends of a veth). With `missingOk`, a link that is already gone is not an error. */
export async function deleteLink(
  sock: NetlinkSocket,
  link: LinkRef,
  options: { missingOk?: boolean } = {},
): Promise<boolean> {
  const sel = linkSelector(link);
  const payload = Buffer.concat([encodeIfinfomsg({ index: sel.index }), encodeAttrs(sel.attrs)]);
  try {
    await call(sock, `delete link ${link}`, RTM.DELLINK, 0, payload);
    return true;
  } catch (e) {
    if (options.missingOk && e instanceof SyscallError && e.code === 'ENODEV') return false;
    throw e;
  }
}

/** One link by index or name, or undefined when there is none. */
export async function getLink(sock: NetlinkSocket, link: LinkRef): Promise<LinkInfo | undefined> {
  const sel = linkSelector(link);
  const payload = Buffer.concat([encodeIfinfomsg({ index: sel.index }), encodeAttrs(sel.attrs)]);
  try {
    const msgs = await sock.request(RTM.GETLINK, 0, payload);
    const m = msgs.find((x) => x.type === RTM.NEWLINK);
    return m ? parseLink(m) : undefined;
  } catch (e) {
    if (e instanceof SyscallError && e.code === 'ENODEV') return undefined;
    throw e;
  }
}

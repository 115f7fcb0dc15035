import { InvalidArgumentError, SyscallError } from '../errors.js';
import { type Attr, attrMap, encodeAttrs, type NetlinkSocket, NLM_F, type NlMsg } from './netlink.js';
import { RTM } from './rtnetlink.js';
import { AF, formatIPv4, formatIPv6, ipv4Bytes, ipv6Bytes } from './sockaddr.js';

/** Address attributes (linux/if_addr.h). */
export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4, FLAGS: 8 } as const;
/** Route scopes (linux/rtnetlink.h). */
export const RT_SCOPE = { UNIVERSE: 0, SITE: 200, LINK: 253, HOST: 254, NOWHERE: 255 } as const;

/** An IP address and its family, from text. */
export function parseIp(address: string): { family: number; bytes: Buffer } {
  if (address.includes(':')) return { family: AF.INET6, bytes: ipv6Bytes(address) };
  return { family: AF.INET, bytes: ipv4Bytes(address) };
}

export function formatIp(family: number, b: Buffer): string {
  return family === AF.INET6 ? formatIPv6(b) : formatIPv4(b);
}

function checkPrefix(family: number, prefixLength: number): void {
  const max = family === AF.INET6 ? 128 : 32;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > max)
    throw new InvalidArgumentError(`Invalid prefix length: ${prefixLength}`);
}

export interface AddressInfo {
  family: number;
  index: number;
  address: string;
  prefixLength: number;
  scope: number;
  flags: number;
  label?: string;
  broadcast?: string;
}

/** struct ifaddrmsg (8 bytes). */
function encodeIfaddrmsg(a: { family: number; prefixLength: number; scope?: number; index: number }): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(a.family, 0);
  b.writeUInt8(a.prefixLength, 1);
  b.writeUInt8(a.scope ?? 0, 3);
  b.writeUInt32LE(a.index, 4);
  return b;
}

export function parseAddress(m: NlMsg): AddressInfo {
  const family = m.payload.readUInt8(0);
  const attrs = attrMap(m.payload.subarray(8));
  const local = attrs.get(IFA.LOCAL) ?? attrs.get(IFA.ADDRESS) ?? Buffer.alloc(family === AF.INET6 ? 16 : 4);
  const flags = attrs.get(IFA.FLAGS);
  const out: AddressInfo = {
    family,
    prefixLength: m.payload.readUInt8(1),
    scope: m.payload.readUInt8(3),
    index: m.payload.readUInt32LE(4),
    flags: flags && flags.length >= 4 ? flags.readUInt32LE(0) : m.payload.readUInt8(2),
    address: formatIp(family, local),
  };
  const label = attrs.get(IFA.LABEL);
  if (label) out.label = label.subarray(0, label.indexOf(0) < 0 ? label.length : label.indexOf(0)).toString();
  const brd = attrs.get(IFA.BROADCAST);
  if (brd) out.broadcast = formatIp(family, brd);
  return out;
}

export interface AddressSpec {
  index: number;
  address: string;
  prefixLength: number;
  /** IPv4 only: default the subnet's last address; `false` for none. */
  broadcast?: string | false;
  scope?: number;
}

function addressMessage(a: AddressSpec): Buffer {
  const { family, bytes } = parseIp(a.address);
  checkPrefix(family, a.prefixLength);
  const attrs: Attr[] = [
    { type: IFA.LOCAL, value: bytes },
    { type: IFA.ADDRESS, value: bytes },
  ];
  if (family === AF.INET && a.broadcast !== false && a.prefixLength < 31) {
    const brd =
      a.broadcast !== undefined
        ? ipv4Bytes(a.broadcast)
        : (() => {
            const b = Buffer.alloc(4);
            const host = a.prefixLength === 0 ? 0xffffffff : (1 << (32 - a.prefixLength)) - 1;
            b.writeUInt32BE((bytes.readUInt32BE(0) | host) >>> 0);
            return b;
          })();
    attrs.push({ type: IFA.BROADCAST, value: brd });
  }
  return Buffer.concat([
    encodeIfaddrmsg({ family, prefixLength: a.prefixLength, scope: a.scope, index: a.index }),
    encodeAttrs(attrs),
  ]);
}

async function call(
  sock: NetlinkSocket,
  what: string,
  type: number,
  flags: number,
  p: Buffer,
): Promise<void> {
  try {
    await sock.request(type, flags, p);
  } catch (e) {
    if (e instanceof SyscallError) throw new SyscallError(what, e.errno, undefined, { cause: e });
    throw e;
  }
}

/** Adds an address to a link; EEXIST when it is already there (pass `replace` to accept that). */
export async function addAddress(
  sock: NetlinkSocket,
  a: AddressSpec,
  options: { replace?: boolean } = {},
): Promise<void> {
  const flags = NLM_F.CREATE | (options.replace ? NLM_F.REPLACE : NLM_F.EXCL);
  await call(
    sock,
    `add address ${a.address}/${a.prefixLength} to link ${a.index}`,
    RTM.NEWADDR,
    flags,
    addressMessage(a),
  );
}

/** Removes an address from a link; with `missingOk`, one that is not there is not an error. */
export async function deleteAddress(
  sock: NetlinkSocket,
  a: AddressSpec,
  options: { missingOk?: boolean } = {},
): Promise<boolean> {
  try {
    await call(
      sock,
      `delete address ${a.address}/${a.prefixLength} from link ${a.index}`,
      RTM.DELADDR,
      0,
      addressMessage({ ...a, broadcast: false }),
    );
    return true;
  } catch (e) {
    if (options.missingOk && e instanceof SyscallError && (e.code === 'EADDRNOTAVAIL' || e.code === 'ENODEV'))
      return false;
    throw e;
  }
}

/** Every address of the namespace (of one family, of one link). */
export async function listAddresses(
  sock: NetlinkSocket,
  filter: { family?: number; index?: number } = {},
): Promise<AddressInfo[]> {
  const msgs = await sock.dump(
    RTM.GETADDR,
    encodeIfaddrmsg({ family: filter.family ?? AF.UNSPEC, prefixLength: 0, index: 0 }),
  );
  return msgs
    .filter((m) => m.type === RTM.NEWADDR)
    .map(parseAddress)
    .filter(
      (a) =>
        (filter.family === undefined || a.family === filter.family) &&
        (filter.index === undefined || a.index === filter.index),
    );
}

import { BOOTREQUEST, DhcpType, encodeDhcp, Opt, opt } from './codec.js';

/** What every message of one client exchange carries. */
export interface ClientExchange {
  xid: number;
  /** When the exchange started (Date.now()): `secs` counts from it. */
  started: number;
  clientId: Buffer;
  mac: Buffer;
  hostname?: string | undefined;
}

// What we ask the server for (option 55), as networkd's client asks for the IPv4 basics.
const PARAMETERS = Buffer.of(Opt.SUBNET_MASK, Opt.ROUTER, Opt.DNS, Opt.DOMAIN_NAME, Opt.BROADCAST);

/**
 * A client's BOOTREQUEST of `type` (RFC 2131 §4.4.1 table 5): message
 * type and client id always; DISCOVER and REQUEST also say the largest
 * message we take, what we want to know, and our hostname.
 */
export function clientMessage(
  x: ClientExchange,
  type: number,
  extra: Array<[number, Buffer]>,
  ciaddr = '0.0.0.0',
): Buffer {
  const options: Array<[number, Buffer]> = [
    opt.u8(Opt.MESSAGE_TYPE, type),
    opt.bytes(Opt.CLIENT_ID, x.clientId),
    ...extra,
  ];
  if (type === DhcpType.DISCOVER || type === DhcpType.REQUEST) {
    options.push(opt.u16(Opt.MAX_MESSAGE_SIZE, 1500));
    options.push(opt.bytes(Opt.PARAMETER_REQUEST_LIST, PARAMETERS));
    if (x.hostname) options.push(opt.bytes(Opt.HOSTNAME, Buffer.from(x.hostname)));
  }
  return encodeDhcp({
    op: BOOTREQUEST,
    xid: x.xid,
    secs: Math.min(0xffff, Math.floor((Date.now() - x.started) / 1000)),
    ciaddr,
    chaddr: x.mac,
    options,
  });
}

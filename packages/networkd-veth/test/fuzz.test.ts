import {
  AF,
  bindToDevice,
  closeQuietly,
  SO,
  SOCK,
  SOL,
  sendto,
  setsockopt,
  sockaddrIn,
  socket,
  withNetworkNamespace,
} from '@sd/sys';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { fuzzRuns, fuzzTimeout } from '../../../tools/test/fuzz.js';
import { BOOTREPLY, BOOTREQUEST, DhcpType, encodeDhcp, Opt, opt } from '../src/dhcp/codec.js';
import { ipToInt } from '../src/dhcp/ipv4.js';
import {
  type DhcpClient,
  type DhcpServer,
  type Ipv4ll,
  startDhcpClient,
  startDhcpServer,
  startIpv4ll,
} from '../src/index.js';
import { encodeArp } from '../src/ipv4ll/arp.js';
import { makeNsPair, type NsPair, once } from './netns-fixture.js';

/**
 * Hostile input against the real server, client and IPv4LL on a veth pair:
 * thousands of malformed or crafted DHCP and ARP packets never crash them,
 * and nothing outside the pool (server) or outside what a host may use
 * (client, link-local) is ever leased or configured.
 */

const isRoot = process.getuid?.() === 0;

const byte = fc.integer({ min: 0, max: 255 });
const ipArb = fc.oneof(
  fc.constantFrom(
    '0.0.0.0',
    '10.80.0.1',
    '10.80.0.2',
    '10.80.0.14',
    '10.80.0.15',
    '10.80.0.16',
    '255.255.255.255',
    '127.0.0.1',
    '224.0.0.1',
    '169.254.3.4',
  ),
  fc.tuple(byte, byte, byte, byte).map((t) => t.join('.')),
);
const optionArb = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(1, 3, 6, 12, 50, 51, 52, 53, 54, 55, 57, 58, 59, 61, 80, 255, 0),
      fc.uint8Array({ maxLength: 12 }),
    )
    .map(([c, v]): [number, Buffer] => [c, Buffer.from(v)]),
  fc
    .tuple(fc.constantFrom(1, 3, 6, 50, 54), ipArb)
    .map(([c, a]): [number, Buffer] => [c, Buffer.from(a.split('.').map(Number))]),
  fc.tuple(fc.constantFrom(51, 58, 59), fc.nat()).map(([c, v]) => opt.u32(c, v)),
  fc.tuple(fc.constant(53), fc.integer({ min: 0, max: 10 })).map(([c, v]) => opt.u8(c, v)),
);

function mutate(base: Buffer, edits: Array<[number, number]>, cut: number): Buffer {
  const b = Buffer.from(base);
  for (const [at, v] of edits) b[at % b.length] = v;
  return b.subarray(0, Math.min(b.length, cut));
}

describe.skipIf(!isRoot)('hostile packets against server, client and IPv4LL (property)', () => {
  let pair: NsPair | undefined;
  let server: DhcpServer | undefined;
  const running: Array<DhcpClient | Ipv4ll> = [];

  afterEach(async () => {
    for (const r of running.splice(0)) await r.stop();
    server?.stop();
    await pair?.cleanup();
    server = pair = undefined;
  });

  it(
    'the server survives thousands of malformed requests and leases only pool addresses',
    async () => {
      pair = await makeNsPair();
      const p = pair;
      p.ip(p.nsA, 'addr', 'add', '10.80.0.1/28', 'dev', p.ifA);
      server = startDhcpServer({
        netnsFd: p.fdA,
        links: [
          {
            ifname: p.ifA,
            serverAddress: '10.80.0.1',
            prefixLength: 28,
            poolStart: '10.80.0.4',
            poolEnd: '10.80.0.9',
            // Short leases: the fuzzing clients' run out before the real client asks.
            leaseTime: 2,
            declineHoldMs: 1000,
          },
        ],
      });
      const s = server;
      const request = fc
        .record({
          type: fc.integer({ min: 0, max: 9 }),
          client: fc.nat(30),
          ciaddr: ipArb,
          giaddr: fc.oneof(fc.constant('0.0.0.0'), ipArb),
          options: fc.array(optionArb, { maxLength: 8 }),
          edits: fc.array(fc.tuple(fc.nat(400), byte), { maxLength: 6 }),
          cut: fc.integer({ min: 0, max: 400 }),
        })
        .map((r) =>
          mutate(
            encodeDhcp({
              op: BOOTREQUEST,
              xid: r.client,
              chaddr: Buffer.from([2, 0, 0, 0, 1, r.client]),
              ciaddr: r.ciaddr,
              giaddr: r.giaddr,
              options: [opt.u8(Opt.MESSAGE_TYPE, r.type), ...r.options],
            }),
            r.edits,
            r.edits.length ? r.cut + 240 : 1000,
          ),
        );
      const datagram = fc.oneof(
        request,
        fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)),
      );
      const inPool = (a: string) => ipToInt(a) >= ipToInt('10.80.0.4') && ipToInt(a) <= ipToInt('10.80.0.9');
      fc.assert(
        fc.property(datagram, (d) => {
          s.handleDatagram(p.ifA, d);
          for (const l of s.leases(p.ifA)) expect(inPool(l.address), l.address).toBe(true);
        }),
        { numRuns: fuzzRuns(4000) },
      );
      // And over the wire: the same kind of datagrams through the real socket.
      const fd = withNetworkNamespace(p.fdB, () => socket(AF.INET, SOCK.DGRAM, 0));
      try {
        setsockopt(fd, SOL.SOCKET, SO.BROADCAST, 1);
        bindToDevice(fd, p.ifB);
        const sample = fc.sample(datagram, { numRuns: fuzzRuns(1000), seed: 13 });
        // In bursts the server's socket buffer can take; it drains them between.
        for (let i = 0; i < sample.length; i += 25) {
          for (const d of sample.slice(i, i + 25)) sendto(fd, d, sockaddrIn('255.255.255.255', 67));
          await new Promise((r) => setTimeout(r, 5));
        }
      } finally {
        closeQuietly(fd);
      }
      await new Promise((r) => setTimeout(r, 500));
      expect(s.stats.received).toBeGreaterThan(900);
      expect(s.stats.malformed).toBeGreaterThan(100);
      for (const l of s.leases(p.ifA)) expect(inPool(l.address)).toBe(true);
      await new Promise((r) => setTimeout(r, 2100));
      // Still serving: a real client gets an address from the pool.
      const client = await startDhcpClient({
        netnsFd: p.fdB,
        ifname: p.ifB,
        clientId: Buffer.from('\x00sddhcp-fuzz'),
      });
      running.push(client);
      const drops: string[] = [];
      s.on('drop', (d) => drops.push(d.reason));
      const lease = await once<{ address: string }>(client, 'bound').catch((e: Error) => {
        throw new Error(`${e.message}; server dropped: ${drops.join(', ')}`);
      });
      expect(inPool(lease.address)).toBe(true);
    },
    fuzzTimeout(60_000),
  );

  it(
    'the client takes only sound leases from crafted OFFERs and ACKs, and survives garbage',
    async () => {
      pair = await makeNsPair();
      const p = pair;
      const mac = Buffer.from(
        (JSON.parse(p.ip(p.nsB, '-j', 'link', 'show', p.ifB))[0].address as string)
          .split(':')
          .map((x) => Number.parseInt(x, 16)),
      );
      const reply = fc.record({
        type: fc.constantFrom(DhcpType.OFFER, DhcpType.ACK, DhcpType.NAK, 1, 9),
        yiaddr: ipArb,
        options: fc.array(optionArb, { maxLength: 8 }),
        goodXid: fc.boolean(),
        edits: fc.array(fc.tuple(fc.nat(400), byte), { maxLength: 4 }),
      });
      const usable = (a: string) => {
        const [x, y] = a.split('.').map(Number) as [number, number];
        return x !== 0 && x !== 127 && x < 224 && !(x === 169 && y === 254);
      };
      await fc.assert(
        fc.asyncProperty(
          fc.array(reply, { minLength: 1, maxLength: 12 }),
          fc.uint8Array({ maxLength: 400 }),
          async (replies, junk) => {
            const client = await startDhcpClient({
              netnsFd: p.fdB,
              ifname: p.ifB,
              retransmitMs: 60_000,
              sendRelease: false,
            });
            try {
              client.handlePacket(Buffer.from(junk));
              client.handleDhcp(Buffer.from(junk));
              for (const r of replies) {
                const m = encodeDhcp({
                  op: BOOTREPLY,
                  xid: r.goodXid ? client.transactionId : client.transactionId ^ 1,
                  chaddr: mac,
                  yiaddr: r.yiaddr,
                  options: [
                    opt.u8(Opt.MESSAGE_TYPE, r.type),
                    opt.ip(Opt.SERVER_ID, [ipToInt('10.80.0.1')]),
                    opt.u32(Opt.LEASE_TIME, 600),
                    ...r.options,
                  ],
                });
                client.handleDhcp(r.edits.length ? mutate(m, r.edits, 1000) : m);
                await new Promise((res) => setImmediate(res));
              }
              await new Promise((res) => setTimeout(res, 5));
              if (client.lease) {
                expect(usable(client.lease.address), client.lease.address).toBe(true);
                expect(client.lease.prefixLength).toBeGreaterThan(0);
                expect(client.lease.prefixLength).toBeLessThanOrEqual(30);
                expect(client.lease.leaseTime).toBeGreaterThanOrEqual(2);
              }
              for (const a of p.addresses(p.nsB, p.ifB)) expect(usable(a.split('/')[0]!), a).toBe(true);
            } finally {
              await client.stop();
            }
            expect(p.addresses(p.nsB, p.ifB)).toEqual([]);
          },
        ),
        { numRuns: fuzzRuns(300) },
      );
    },
    fuzzTimeout(120_000),
  );

  it(
    'IPv4LL survives thousands of malformed and conflicting ARP packets and stays in 169.254.1.0-169.254.254.255',
    async () => {
      pair = await makeNsPair();
      const p = pair;
      const ll = await startIpv4ll({
        netnsFd: p.fdB,
        ifname: p.ifB,
        timings: {
          probeWait: 5,
          probeMin: 5,
          probeMax: 10,
          announceWait: 5,
          announceInterval: 5,
          rateLimitInterval: 50,
        },
      });
      running.push(ll);
      await once(ll, 'bound');
      const arp = fc.oneof(
        fc.uint8Array({ maxLength: 60 }).map((u) => Buffer.from(u)),
        fc
          .record({
            op: fc.integer({ min: 0, max: 3 }),
            mac: fc.uint8Array({ minLength: 6, maxLength: 6 }),
            sender: fc.oneof(fc.constant(-1), fc.nat(0xffffffff)),
            target: fc.oneof(fc.constant(-1), fc.nat(0xffffffff)),
            edits: fc.array(fc.tuple(fc.nat(27), byte), { maxLength: 3 }),
          })
          .map((r) => {
            const own = ll.address ? ipToInt(ll.address) : 0;
            const b = encodeArp({
              op: r.op,
              senderMac: Buffer.from(r.mac),
              senderIp: r.sender < 0 ? own : r.sender,
              targetMac: Buffer.alloc(6),
              targetIp: r.target < 0 ? own : r.target,
            });
            return mutate(b, r.edits, 28);
          }),
      );
      const lo = ipToInt('169.254.1.0');
      const hi = ipToInt('169.254.254.255');
      fc.assert(
        fc.property(arp, (b) => {
          ll.handleArp(b);
          const a = ll.address;
          if (a) expect(ipToInt(a) >= lo && ipToInt(a) <= hi, a).toBe(true);
        }),
        { numRuns: fuzzRuns(4000) },
      );
      await new Promise((r) => setTimeout(r, 300));
      for (const a of p.addresses(p.nsB, p.ifB)) {
        const v = ipToInt(a.split('/')[0]!);
        expect(v >= lo && v <= hi && a.endsWith('/16'), a).toBe(true);
      }
    },
    fuzzTimeout(60_000),
  );
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../../tools/test/fuzz.js';
import { BOOTREQUEST, DhcpType, encodeDhcp, Opt, opt, parseDhcp } from './codec.js';
import { ipToInt } from './ipv4.js';
import { LeasePool } from './leases.js';

const mac = (n: number) => Buffer.from([2, 0, 0, 0, 0, n & 255]);

function req(
  type: number,
  n: number,
  o: {
    requested?: string;
    server?: string;
    ciaddr?: string;
    flags?: number;
    giaddr?: string;
    rapid?: boolean;
  } = {},
) {
  const options: Array<[number, Buffer]> = [opt.u8(Opt.MESSAGE_TYPE, type)];
  if (o.rapid) options.push([Opt.RAPID_COMMIT, Buffer.alloc(0)]);
  if (o.requested) options.push(opt.ip(Opt.REQUESTED_IP, [ipToInt(o.requested)]));
  if (o.server) options.push(opt.ip(Opt.SERVER_ID, [ipToInt(o.server)]));
  return parseDhcp(
    encodeDhcp({
      op: BOOTREQUEST,
      xid: n,
      chaddr: mac(n),
      flags: o.flags ?? 0,
      ...(o.ciaddr ? { ciaddr: o.ciaddr } : {}),
      ...(o.giaddr ? { giaddr: o.giaddr } : {}),
      options,
    }),
  );
}

const cfg = { serverAddress: '10.0.0.1', prefixLength: 28 };

describe('DHCP server lease pool', () => {
  it('offers, acks and renews one stable address per client, inside the pool', () => {
    const pool = new LeasePool(cfg);
    const offer = pool.handle(req(DhcpType.DISCOVER, 1), 0);
    const yiaddr = offer.reply!.message.yiaddr!;
    expect(offer.reply!.to).toEqual({ kind: 'link', address: yiaddr, mac: mac(1) });
    expect(pool.inPool(ipToInt(yiaddr))).toBe(true);
    const ack = pool.handle(req(DhcpType.REQUEST, 1, { requested: yiaddr, server: '10.0.0.1' }), 1);
    expect(ack.events).toEqual([
      {
        type: 'lease',
        renewed: false,
        lease: expect.objectContaining({ address: yiaddr, expiresAt: 3_600_001 }),
      },
    ]);
    const opts = new Map(ack.reply!.message.options.map(([c, v]) => [c, v]));
    expect(opts.get(Opt.ROUTER)).toEqual(Buffer.from([10, 0, 0, 1]));
    expect(opts.get(Opt.SUBNET_MASK)).toEqual(Buffer.from([255, 255, 255, 240]));
    expect(opts.get(Opt.LEASE_TIME)!.readUInt32BE(0)).toBe(3600);
    // The same client rediscovering gets the same address; renewal (ciaddr) is unicast.
    expect(pool.handle(req(DhcpType.DISCOVER, 1), 2).reply!.message.yiaddr).toBe(yiaddr);
    const renew = pool.handle(req(DhcpType.REQUEST, 1, { ciaddr: yiaddr }), 3);
    expect(renew.reply!.to).toEqual({ kind: 'unicast', address: yiaddr });
    expect(renew.events[0]).toMatchObject({ type: 'lease', renewed: true });
  });

  it('answers a DISCOVER with Rapid Commit by an ACK that commits the lease (RFC 4039), unless told not to', () => {
    const pool = new LeasePool(cfg);
    const ack = pool.handle(req(DhcpType.DISCOVER, 1, { rapid: true }), 0);
    const opts = new Map(ack.reply!.message.options.map(([c, v]) => [c, v]));
    expect(opts.get(Opt.MESSAGE_TYPE)).toEqual(Buffer.of(DhcpType.ACK));
    expect(opts.get(Opt.RAPID_COMMIT)).toEqual(Buffer.alloc(0));
    const yiaddr = ack.reply!.message.yiaddr!;
    expect(pool.inPool(ipToInt(yiaddr))).toBe(true);
    expect(ack.events).toEqual([
      { type: 'lease', renewed: false, lease: expect.objectContaining({ address: yiaddr }) },
    ]);
    // Committed: another client does not get it, and the holder keeps it when it asks again without.
    expect(pool.handle(req(DhcpType.DISCOVER, 2, { rapid: true }), 1).reply!.message.yiaddr).not.toBe(yiaddr);
    expect(pool.handle(req(DhcpType.DISCOVER, 1), 2).reply!.message.yiaddr).toBe(yiaddr);
    // Without the option, or with the server's RapidCommit off: an OFFER, nothing leased.
    const plain = new LeasePool(cfg).handle(req(DhcpType.DISCOVER, 3), 0);
    expect(plain.reply!.message.options[0]).toEqual(opt.u8(Opt.MESSAGE_TYPE, DhcpType.OFFER));
    const off = new LeasePool({ ...cfg, rapidCommit: false }).handle(
      req(DhcpType.DISCOVER, 3, { rapid: true }),
      0,
    );
    expect(off.reply!.message.options[0]).toEqual(opt.u8(Opt.MESSAGE_TYPE, DhcpType.OFFER));
    expect(off.events).toEqual([]);
  });

  it('NAKs foreign subnets and addresses held by others; ignores requests for another server', () => {
    const pool = new LeasePool(cfg);
    const a = pool.handle(req(DhcpType.DISCOVER, 1), 0).reply!.message.yiaddr!;
    pool.handle(req(DhcpType.REQUEST, 1, { requested: a, server: '10.0.0.1' }), 0);
    const foreign = pool.handle(req(DhcpType.REQUEST, 2, { requested: '192.168.5.5' }), 0);
    expect(foreign.reply!.to).toEqual({ kind: 'broadcast' });
    expect(foreign.events).toEqual([
      { type: 'nak', clientId: expect.any(String), reason: 'requested address is on another network' },
    ]);
    expect(pool.handle(req(DhcpType.REQUEST, 2, { requested: a }), 0).events[0]).toMatchObject({
      type: 'nak',
    });
    expect(pool.handle(req(DhcpType.REQUEST, 2, { ciaddr: a }), 0).events[0]).toMatchObject({ type: 'nak' });
    expect(pool.handle(req(DhcpType.REQUEST, 2, { requested: a, server: '10.0.0.99' }), 0)).toEqual({
      events: [],
      ignored: 'client chose server 10.0.0.99',
    });
  });

  it('frees released addresses, holds declined ones out, expires leases', () => {
    const pool = new LeasePool({ ...cfg, poolStart: '10.0.0.5', poolEnd: '10.0.0.5', declineHoldMs: 1000 });
    const a = pool.handle(req(DhcpType.DISCOVER, 1), 0).reply!.message.yiaddr!;
    expect(a).toBe('10.0.0.5');
    // Client 2 cannot decline client 1's address.
    expect(pool.handle(req(DhcpType.DECLINE, 2, { requested: a, server: '10.0.0.1' }), 0).ignored).toMatch(
      /not given/,
    );
    pool.handle(req(DhcpType.REQUEST, 1, { requested: a, server: '10.0.0.1' }), 0);
    // Leased: nothing left for another client.
    expect(pool.handle(req(DhcpType.DISCOVER, 2), 0)).toMatchObject({ ignored: 'pool exhausted' });
    expect(pool.handle(req(DhcpType.RELEASE, 2, { ciaddr: a }), 0).ignored).toMatch(
      /not leased to this client/,
    );
    expect(pool.handle(req(DhcpType.RELEASE, 1, { ciaddr: a }), 0).events[0]).toMatchObject({
      type: 'release',
    });
    expect(pool.list(0)).toEqual([]);
    pool.handle(req(DhcpType.DISCOVER, 3), 0);
    expect(pool.handle(req(DhcpType.DECLINE, 3, { requested: a, server: '10.0.0.1' }), 0).events).toEqual([
      { type: 'decline', address: a, clientId: expect.any(String) },
    ]);
    expect(pool.handle(req(DhcpType.DISCOVER, 4), 500)).toMatchObject({ ignored: 'pool exhausted' });
    expect(pool.handle(req(DhcpType.DISCOVER, 4), 1001).reply!.message.yiaddr).toBe(a);
    pool.handle(req(DhcpType.REQUEST, 4, { requested: a, server: '10.0.0.1' }), 1001);
    expect(pool.expire(1001 + 3_600_000).map((l) => l.address)).toEqual([a]);
  });

  it('offers are no commitment: a newcomer gets the oldest offered address when nothing else is free', () => {
    const pool = new LeasePool({ ...cfg, poolStart: '10.0.0.5', poolEnd: '10.0.0.6' });
    const a1 = pool.handle(req(DhcpType.DISCOVER, 1), 0).reply!.message.yiaddr!;
    const a2 = pool.handle(req(DhcpType.DISCOVER, 2), 1).reply!.message.yiaddr!;
    expect(a1).not.toBe(a2);
    expect(pool.handle(req(DhcpType.DISCOVER, 3), 2).reply!.message.yiaddr).toBe(a1);
    // Client 1 comes back too late: refused, and it starts over.
    expect(
      pool.handle(req(DhcpType.REQUEST, 1, { requested: a1, server: '10.0.0.1' }), 3).events[0],
    ).toMatchObject({
      type: 'nak',
    });
    expect(
      pool.handle(req(DhcpType.REQUEST, 3, { requested: a1, server: '10.0.0.1' }), 3).events[0],
    ).toMatchObject({
      type: 'lease',
    });
  });

  it('refuses pools that do not fit the subnet, by name', () => {
    expect(() => new LeasePool({ ...cfg, poolStart: '10.0.1.2' })).toThrow(
      /poolStart 10.0.1.2 is outside 10.0.0.0\/28/,
    );
    expect(() => new LeasePool({ ...cfg, poolStart: '10.0.0.9', poolEnd: '10.0.0.3' })).toThrow(
      /after its end/,
    );
    expect(() => new LeasePool({ serverAddress: '10.0.0.0', prefixLength: 24 })).toThrow(
      /not a host address/,
    );
    expect(() => new LeasePool({ ...cfg, prefixLength: 31 })).toThrow(/leaves no addresses/);
  });

  it('never leases outside the pool nor one address twice, whatever clients send (property)', () => {
    const addr = fc.oneof(
      fc.constantFrom('10.0.0.0', '10.0.0.1', '10.0.0.5', '10.0.0.15', '10.0.0.16', '10.0.0.255', '0.0.0.0'),
      fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((t) => t.join('.')),
    );
    const step = fc.record({
      type: fc.integer({ min: 1, max: 8 }),
      client: fc.nat(20),
      requested: fc.option(addr, { nil: undefined }),
      server: fc.option(fc.constantFrom('10.0.0.1', '10.0.0.2'), { nil: undefined }),
      ciaddr: fc.option(addr, { nil: undefined }),
      giaddr: fc.option(addr, { nil: undefined }),
      rapid: fc.boolean(),
      dt: fc.nat(4_000_000),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const pool = new LeasePool({ ...cfg, poolStart: '10.0.0.3', poolEnd: '10.0.0.12' });
        let now = 0;
        for (const s of steps) {
          now += s.dt;
          const o: Parameters<typeof req>[2] = {};
          if (s.requested) o.requested = s.requested;
          if (s.server) o.server = s.server;
          if (s.ciaddr) o.ciaddr = s.ciaddr;
          if (s.giaddr) o.giaddr = s.giaddr;
          if (s.rapid) o.rapid = true;
          const r = pool.handle(req(s.type, s.client, o), now);
          const m = r.reply?.message;
          const type = m?.options.find(([c]) => c === Opt.MESSAGE_TYPE)?.[1][0];
          if (type === DhcpType.OFFER || (type === DhcpType.ACK && m?.yiaddr))
            expect(pool.inPool(ipToInt(m!.yiaddr!))).toBe(true);
          const leases = pool.list(now);
          for (const l of leases) expect(pool.inPool(ipToInt(l.address))).toBe(true);
          expect(new Set(leases.map((l) => l.address)).size).toBe(leases.length);
        }
      }),
      { numRuns: fuzzRuns(2000) },
    );
  });
});

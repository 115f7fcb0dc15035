import { describe, expect, it } from 'vitest';
import { clientMessage } from './client-message.js';
import { rebindStepMs, renewStepMs, retransmitDelay } from './client-timing.js';
import { DhcpType, Opt, parseDhcp } from './codec.js';

describe('client retransmission and renewal timing', () => {
  it('doubles from the first delay up to 64 s, randomized by at most a quarter (1 s at most)', () => {
    for (let tries = 0; tries < 12; tries++) {
      const base = Math.min(64_000, 250 * 2 ** Math.min(tries, 10));
      const spread = Math.min(1000, base / 4);
      for (let i = 0; i < 200; i++) {
        const d = retransmitDelay(tries, 250);
        expect(d).toBeGreaterThanOrEqual(Math.max(50, base - spread));
        expect(d).toBeLessThanOrEqual(base + spread);
      }
    }
  });

  it('renews and rebinds at half the time left, at least 60 s but less for short leases', () => {
    const hour = { t1: 1800, t2: 3150, leaseTime: 3600 };
    expect(renewStepMs(hour as never)).toBe(675_000);
    expect(rebindStepMs(hour as never)).toBe(225_000);
    const day = { t1: 43_200, t2: 75_600, leaseTime: 86_400 };
    expect(renewStepMs(day as never)).toBe(16_200_000);
    // Close to T2 or to the end, 60 s is the floor; a 20 s lease scales it down to 2 s.
    expect(rebindStepMs({ t1: 1, t2: 2, leaseTime: 100 } as never)).toBe(49_000);
    expect(renewStepMs({ t1: 10, t2: 17.5, leaseTime: 20 } as never)).toBe(3750);
    expect(rebindStepMs({ t1: 10, t2: 19.9, leaseTime: 20 } as never)).toBe(2000);
  });
});

describe('client messages', () => {
  const x = { xid: 0x1234, started: Date.now(), clientId: Buffer.of(1, 2, 3), mac: Buffer.alloc(6, 0xab) };

  it('a DISCOVER asks for the basics and names the host; a RELEASE carries neither', () => {
    const d = parseDhcp(clientMessage({ ...x, hostname: 'box' }, DhcpType.DISCOVER, [], undefined));
    expect(d.xid).toBe(0x1234);
    expect(d.options.get(Opt.MESSAGE_TYPE)).toEqual(Buffer.of(DhcpType.DISCOVER));
    expect(d.options.get(Opt.CLIENT_ID)).toEqual(Buffer.of(1, 2, 3));
    expect([...(d.options.get(Opt.PARAMETER_REQUEST_LIST) ?? [])]).toEqual([
      Opt.SUBNET_MASK,
      Opt.ROUTER,
      Opt.DNS,
      Opt.DOMAIN_NAME,
      Opt.BROADCAST,
    ]);
    expect(d.options.get(Opt.HOSTNAME)?.toString()).toBe('box');
    const r = parseDhcp(clientMessage(x, DhcpType.RELEASE, [], '10.0.0.2'));
    expect(r.ciaddr).toBe('10.0.0.2');
    expect(r.options.has(Opt.PARAMETER_REQUEST_LIST)).toBe(false);
    expect(r.options.has(Opt.HOSTNAME)).toBe(false);
  });
});

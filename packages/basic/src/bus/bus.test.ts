import { existsSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { busReachable, connectBus, systemBusAddress } from './bus.js';

describe('the system bus', () => {
  it('uses $DBUS_SYSTEM_BUS_ADDRESS, else the system bus socket', () => {
    expect(systemBusAddress({ DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/tmp/x' })).toBe('unix:path=/tmp/x');
    expect(systemBusAddress({})).toBe('unix:path=/run/dbus/system_bus_socket');
  });

  it('knows that a missing socket is no bus', () => {
    expect(busReachable('unix:path=/nonexistent/bus')).toBe(false);
    expect(busReachable('tcp:host=localhost,port=1')).toBe(true);
    expect(busReachable('unix:path=,guid=1;unix:path=/nonexistent/bus')).toBe(false);
    expect(busReachable('tcp:host=x;unix:path=/')).toBe(true);
    // The first unix:path= counts, as the regex's leftmost match.
    expect(busReachable('unix:path=/;unix:path=/nonexistent/bus')).toBe(true);
    expect(busReachable('unix:path=/nonexistent/bus;unix:path=/')).toBe(false);
  });

  it('finds the socket path as /(?:^|;)unix:path=([^,;]+)/ does, in any address list', () => {
    const part = fc.constantFrom(
      'unix:path=',
      'unix:path=/',
      'unix:path=/nonexistent',
      'unix:abstract=',
      ';',
      ',',
      '/',
      '/nonexistent',
      'guid=1',
      'x',
    );
    const address = fc.array(part, { maxLength: 8 }).map((p) => p.join(''));
    fc.assert(
      fc.property(address, (a) => {
        const m = /(?:^|;)unix:path=([^,;]+)/.exec(a);
        return busReachable(a) === (m?.[1] === undefined || existsSync(m[1]));
      }),
      { numRuns: 1000 },
    );
  });

  it('names the address when it cannot connect', async () => {
    await expect(connectBus({ address: 'unix:path=/nonexistent/bus', timeoutMs: 2000 })).rejects.toThrow(
      /Cannot connect to the bus at unix:path=\/nonexistent\/bus/,
    );
  });
});

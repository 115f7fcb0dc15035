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
  });

  it('names the address when it cannot connect', async () => {
    await expect(connectBus({ address: 'unix:path=/nonexistent/bus', timeoutMs: 2000 })).rejects.toThrow(
      /Cannot connect to the bus at unix:path=\/nonexistent\/bus/,
    );
  });
});

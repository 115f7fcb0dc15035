import { describe, expect, it } from 'vitest';
import { busReachable, registerMachine, systemBusAddress } from './register.js';

describe('machined registration', () => {
  it('uses $DBUS_SYSTEM_BUS_ADDRESS, else the system bus socket', () => {
    expect(systemBusAddress({ DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/tmp/x' })).toBe('unix:path=/tmp/x');
    expect(systemBusAddress({})).toBe('unix:path=/run/dbus/system_bus_socket');
  });

  it('knows that a missing socket is no bus', () => {
    expect(busReachable('unix:path=/nonexistent/bus')).toBe(false);
    expect(busReachable('tcp:host=localhost,port=1')).toBe(true);
  });

  it('warns and goes on without a bus', async () => {
    const warnings: string[] = [];
    const r = await registerMachine(
      { machine: 'x', uuid: '', leader: process.pid, rootDirectory: '/' },
      { busAddress: 'unix:path=/nonexistent/bus', logger: { warn: (m) => warnings.push(m) } },
    );
    expect(r).toBeUndefined();
    expect(warnings).toEqual([expect.stringMatching(/No system bus .*not registering machine x/)]);
  });
});

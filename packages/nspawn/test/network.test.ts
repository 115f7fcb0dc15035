import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_UPLINK, INTERNET, Topology } from './net-topology.js';

// Containers run from the host's own / in volatile mode (curl, python3 and ip inside),
// with sd-nspawn itself in the test's "host" namespace.
const base = ['-D', '/', '--volatile=yes', '--register=no', '--console=pipe'];

let t: Topology;
beforeAll(async () => {
  t = await Topology.create();
});
afterAll(async () => {
  await t?.close();
});

describe('sd-nspawn -n', () => {
  it('reaches the internet server, which sees the host uplink address', async () => {
    const r = await t.nspawn([
      ...base,
      '-M',
      'sdnet-a',
      '-n',
      '/usr/bin/curl',
      '-sS',
      '--max-time',
      '5',
      `http://${INTERNET}:8000/`,
    ]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.stdout.trim()).toBe(HOST_UPLINK);
    expect(r.code).toBe(0);
    expect(t.run('host', 'ip', ['-o', 'link']).stdout).not.toMatch(/ve-sdnet/);
    expect(t.nftTables()).toBe('');
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiteMachine1 } from './client.js';

// LiteMachine1 sends a verb's first call with the handshake (BusConnection.open): a bus that
// refuses us must still read as a failure to connect, not as the verb's own error.

let dir = '';
let server: Server;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sd-machinectl-client-'));
  server = createServer((s) => {
    s.on('error', () => {});
    s.on('data', () => s.write('REJECTED EXTERNAL\r\n'));
  });
  await new Promise<void>((r) => server.listen(join(dir, 'bus'), r));
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('LiteMachine1', () => {
  it('reports a refused handshake at the first call as a failure to connect', async () => {
    const m = await LiteMachine1.connect(`unix:path=${join(dir, 'bus')}`);
    try {
      await expect(m.call('/org/freedesktop/machine1', 'x.y', 'ListMachines', '', [])).rejects.toMatchObject({
        code: 'EACCES',
        message: expect.stringMatching(/^Failed to connect to bus: .*refused authentication: REJECTED/),
      });
    } finally {
      m.close();
    }
  });
});

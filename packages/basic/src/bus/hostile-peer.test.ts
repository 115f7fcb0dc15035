import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzRuns } from '../../../../tools/test/fuzz.js';
import { BusConnection } from './connection.js';
import { marshal } from './wire.js';

// BusConnection attacked from the other side: the peer is a hostile bus
// (machined's login connects to a guest's own bus, which the machine's root
// controls). Whatever it sends, the client ends with one SdError naming the
// problem, in bounded time and memory — never a hang, a crash or a result.

let dir = '';
let server: Server;
/** What the fake bus does with a connection; set per test. */
let behave: (s: Socket) => void = () => {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sd-hostile-bus-'));
  server = createServer((s) => {
    s.on('error', () => {});
    behave(s);
  });
  await new Promise<void>((r) => server.listen(join(dir, 'bus'), r));
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const address = () => `unix:path=${join(dir, 'bus')}`;
/** Accepts the auth and then says `after` instead of a proper Hello reply (in order, however the client's bytes come). */
const okThen = (after: Buffer) => (s: Socket) => {
  let seen = '';
  let authed = false;
  s.on('data', (d) => {
    seen += d.toString('latin1');
    if (!authed && seen.includes('AUTH')) {
      s.write('OK 0123456789abcdef0123456789abcdef\r\n');
      authed = true;
    }
    if (authed && seen.includes('BEGIN\r\n')) {
      seen = '';
      s.write(after);
    }
  });
};

/** A header: little-endian, METHOD_RETURN, body of `bodyLen`, a fields array of `fieldsLen`. */
function header(bodyLen: number, fieldsLen: number): Buffer {
  const b = Buffer.alloc(16);
  b.write('l', 0, 'latin1');
  b[1] = 2;
  b[3] = 1;
  b.writeUInt32LE(bodyLen, 4);
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(fieldsLen, 12);
  return b;
}

describe('the handshake', () => {
  it('takes one round trip: BEGIN and Hello go with the AUTH, before the bus says OK', async () => {
    // This bus answers only once it holds the AUTH, the BEGIN and a whole Hello:
    // a client that waited for the OK before sending them would wait forever.
    const body = marshal('s', [':1.7']);
    const fields = marshal('yyyyuua(yv)', [
      0x6c,
      2,
      0,
      1,
      body.length,
      2,
      [
        [5, { signature: 'u', value: 1 }],
        [8, { signature: 'g', value: 's' }],
      ],
    ]);
    const reply = Buffer.concat([fields, Buffer.alloc((8 - (fields.length % 8)) % 8), body]);
    behave = (s) => {
      let seen = Buffer.alloc(0);
      s.on('data', (d) => {
        seen = Buffer.concat([seen, d]);
        const begin = seen.indexOf('BEGIN\r\n');
        if (begin < 0 || seen.length < begin + 7 + 16 || seen[begin + 7] !== 0x6c) return;
        s.write(Buffer.concat([Buffer.from('OK 0123456789abcdef0123456789abcdef\r\n'), reply]));
        seen = Buffer.alloc(0);
      });
    };
    const conn = await BusConnection.connect(address(), 2_000);
    expect(conn.uniqueName).toBe(':1.7');
    conn.close();
  });
});

describe('open(): the first call goes out with the handshake', () => {
  /** A method return for `replySerial`, carrying one string. */
  const methodReturn = (replySerial: number, value: string) => {
    const body = marshal('s', [value]);
    const fields = marshal('yyyyuua(yv)', [
      0x6c,
      2,
      0,
      1,
      body.length,
      100 + replySerial,
      [
        [5, { signature: 'u', value: replySerial }],
        [8, { signature: 'g', value: 's' }],
      ],
    ]);
    return Buffer.concat([fields, Buffer.alloc((8 - (fields.length % 8)) % 8), body]);
  };

  it('sends a call made at once together with AUTH, BEGIN and Hello: one round trip in all', async () => {
    // This bus answers only once it holds the handshake and two whole messages
    // (Hello and the call): a client that waited for Hello's reply would wait forever.
    behave = (s) => {
      let seen = Buffer.alloc(0);
      s.on('data', (d) => {
        seen = Buffer.concat([seen, d]);
        const begin = seen.indexOf('BEGIN\r\n');
        if (begin < 0) return;
        let at = begin + 7;
        for (let n = 0; n < 2; n++) {
          if (seen.length < at + 16) return;
          const fieldsLen = seen.readUInt32LE(at + 12);
          const headerEnd = 16 + fieldsLen + ((8 - ((16 + fieldsLen) % 8)) % 8);
          at += headerEnd + seen.readUInt32LE(at + 4);
          if (seen.length < at) return;
        }
        s.write(
          Buffer.concat([
            Buffer.from('OK 0123456789abcdef0123456789abcdef\r\n'),
            methodReturn(1, ':1.9'),
            methodReturn(2, 'answered'),
          ]),
        );
        seen = Buffer.alloc(0);
      });
    };
    const { conn, ready } = await BusConnection.open(address(), 2_000);
    const reply = conn.call({
      destination: 'x.y',
      path: '/x',
      interface: 'x.y',
      member: 'Z',
      timeoutMs: 2_000,
    });
    await expect(reply).resolves.toEqual(['answered']);
    await expect(ready).resolves.toBe(conn);
    expect(conn.uniqueName).toBe(':1.9');
    conn.close();
  });

  it('a refused authentication: ready and the call made meanwhile reject with it, no wait left', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    behave = (s) => s.on('data', () => s.write('REJECTED EXTERNAL\r\n'));
    const { conn, ready } = await BusConnection.open(address(), 5_000);
    const reply = conn.call({ destination: 'x.y', path: '/x', interface: 'x.y', member: 'Z' });
    await expect(ready).rejects.toMatchObject({
      code: 'EACCES',
      message: expect.stringContaining('REJECTED'),
    });
    await expect(reply).rejects.toMatchObject({ code: 'EACCES' });
    expect(timers()).toBe(before);
  });
});

describe('a hostile bus peer', () => {
  it('an auth reply without end: EPROTO after 4 KiB, not a wait', async () => {
    behave = (s) => s.on('data', () => s.write('x'.repeat(8192)));
    await expect(BusConnection.connect(address(), 5_000)).rejects.toMatchObject({ code: 'EPROTO' });
  });

  it('a refused authentication: EACCES naming the reply', async () => {
    behave = (s) => s.on('data', () => s.write('REJECTED EXTERNAL\r\n'));
    await expect(BusConnection.connect(address(), 5_000)).rejects.toMatchObject({
      code: 'EACCES',
      message: expect.stringContaining('REJECTED'),
    });
  });

  it('a refused authentication leaves no wait behind: the Hello sent ahead ends with it', async () => {
    // Otherwise its call timer (25 s) would keep a CLI that goes on without the bus alive that long.
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    behave = (s) => s.on('data', () => s.write('REJECTED EXTERNAL\r\n'));
    await expect(BusConnection.connect(address(), 5_000)).rejects.toMatchObject({ code: 'EACCES' });
    expect(timers()).toBe(before);
  });

  it('a message announcing more than D-Bus allows is refused at its header, not buffered', async () => {
    behave = okThen(header(0xffff_fff0, 0));
    await expect(BusConnection.connect(address(), 5_000)).rejects.toMatchObject({ code: 'EBADMSG' });
  });

  it('a big-endian or garbage message: EBADMSG', async () => {
    behave = okThen(Buffer.concat([Buffer.from('B'), Buffer.alloc(31, 7)]));
    await expect(BusConnection.connect(address(), 5_000)).rejects.toMatchObject({ code: 'EBADMSG' });
    // A well-formed big-endian header with small lengths, which read as little-endian would pass as a message.
    const be = Buffer.alloc(16);
    be.write('B', 0, 'latin1');
    be[1] = 2;
    be[3] = 1;
    be.writeUInt32BE(1, 8);
    behave = okThen(be);
    await expect(BusConnection.connect(address(), 5_000)).rejects.toMatchObject({
      code: 'EBADMSG',
      message: expect.stringContaining('little-endian'),
    });
  });

  it('a reply to Hello that carries unix fds: EBADMSG, the fds never taken', async () => {
    const fields = marshal('yyyyuua(yv)', [
      0x6c,
      2,
      0,
      1,
      0,
      2,
      [
        [5, { signature: 'u', value: 1 }],
        [9, { signature: 'u', value: 1 }],
      ],
    ]);
    const padded = Buffer.concat([fields, Buffer.alloc((8 - (fields.length % 8)) % 8)]);
    behave = okThen(padded);
    await expect(BusConnection.connect(address(), 5_000)).rejects.toMatchObject({
      code: 'EBADMSG',
      message: expect.stringContaining('unix fds'),
    });
  });

  it('a peer that stalls after the auth: ETIMEDOUT at the deadline', async () => {
    behave = okThen(Buffer.alloc(0));
    await expect(BusConnection.connect(address(), 300)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });

  it('a connected socket (as login passes one) whose peer stalls: ETIMEDOUT at the deadline', async () => {
    behave = okThen(Buffer.alloc(0));
    const sock = new Socket();
    await new Promise<void>((r) => sock.connect(join(dir, 'bus'), r));
    // Auth accepted, Hello never answered: fromConnectedSocket's own deadline.
    await expect(BusConnection.fromConnectedSocket(sock, 'the fake bus', 300)).rejects.toMatchObject({
      code: 'ETIMEDOUT',
    });
  });

  it('random bytes after the auth: one SdError, never a connection', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 600 }),
        fc.boolean(),
        async (bytes, validStart) => {
          const b = Buffer.from(bytes);
          if (validStart) header(b.length, 0).copy(b, 0, 0, Math.min(16, b.length));
          behave = okThen(b);
          const r = await BusConnection.connect(address(), 200).then(
            (c) => {
              c.close();
              return 'connected';
            },
            (e: Error & { code?: string }) => e.code,
          );
          expect(['EBADMSG', 'ETIMEDOUT', 'ECONNRESET', 'ECONNREFUSED']).toContain(r);
        },
      ),
      { numRuns: fuzzRuns(40) },
    );
  }, 120_000);
});

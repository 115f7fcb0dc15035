import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UnixStream } from '../src/net/unix-stream.js';
import { poller } from '../src/poller/poller.js';

const dir = mkdtempSync(join(tmpdir(), 'sd-unix-stream-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function serve(path: string, onConn: (s: Socket) => void): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer(onConn);
    server.listen(path, () => resolve(server));
  });
}

describe('UnixStream', () => {
  it('echoes 8 MiB both ways: writes past the socket buffer wait for it to drain', async () => {
    const path = join(dir, 'echo');
    const server = await serve(path, (s) => s.pipe(s));
    const stream = await UnixStream.connect(path);
    const data = Buffer.alloc(8 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
    const got: Buffer[] = [];
    let size = 0;
    await new Promise<void>((resolve, reject) => {
      stream.setHandlers((d) => {
        got.push(Buffer.from(d));
        size += d.length;
        if (size >= data.length) resolve();
      }, reject);
      for (let off = 0; off < data.length; off += 1 << 20) stream.write(data.subarray(off, off + (1 << 20)));
    });
    expect(Buffer.concat(got).equals(data)).toBe(true);
    stream.destroy();
    stream.destroy();
    server.close();
  });

  it('says when the peer closes, once, and then nothing more', async () => {
    const path = join(dir, 'closer');
    const server = await serve(path, (s) => s.end('bye'));
    const stream = await UnixStream.connect(path);
    const events: string[] = [];
    await new Promise<void>((resolve) => {
      stream.setHandlers(
        (d) => events.push(`data ${d.toString()}`),
        (e) => {
          events.push(`end ${(e as { code?: string }).code}`);
          setTimeout(resolve, 50);
        },
      );
    });
    stream.write('after the end');
    expect(events).toEqual(['data bye', 'end ECONNRESET']);
    server.close();
  });

  it('refuses a missing or non-socket path with the errno, leaving no fd watched', async () => {
    const before = poller().size;
    await expect(UnixStream.connect(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(UnixStream.connect(dir)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(poller().size).toBe(before);
  });
});

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pullTar } from '../src/index.js';
import { archive } from './archive.js';

/**
 * Download resumption: a loopback server that cuts the first response
 * halfway, then answers the Range request (If-Range with its ETag or
 * Last-Modified) with the rest. The pull resumes, the checksum over the
 * whole file verifies, and the image is complete. A server that does not
 * allow ranges, or whose file changed in between, leaves nothing.
 */

let root: string;
let pool: ImagePool;
let server: Server;
let base: string;
let image: Buffer;
let payload: Buffer;
const requests: IncomingHttpHeaders[] = [];

type Mode = 'etag' | 'last-modified' | 'no-ranges' | 'changed' | 'weak-etag';
let mode: Mode = 'etag';
/** How many responses are cut halfway before one is served whole. */
let cuts = 1;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const LAST_MODIFIED = 'Tue, 01 Dec 2026 10:00:00 GMT';

beforeAll(async () => {
  root = mkdtempSync(`${tmpdir()}/importd-resume-`);
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
  // Incompressible, so a cut lands in the middle of a file's data.
  payload = randomBytes(3 << 20);
  image = archive([
    { path: 'etc/os-release', data: 'ID=resume\n' },
    { path: 'big', data: payload },
  ]);
  server = createServer((req, res) => {
    if (req.url === '/SHA256SUMS') {
      res.end(`${sha(image)}  img.tar\n`);
      return;
    }
    if (req.url !== '/img.tar') {
      res.writeHead(404);
      res.end();
      return;
    }
    requests.push(req.headers);
    const headers: Record<string, string | number> = {};
    if (mode !== 'no-ranges') headers['accept-ranges'] = 'bytes';
    if (mode === 'etag' || mode === 'changed')
      headers.etag = requests.length > 1 && mode === 'changed' ? '"v2"' : '"v1"';
    if (mode === 'weak-etag') headers.etag = 'W/"v1"';
    if (mode === 'last-modified' || mode === 'weak-etag') headers['last-modified'] = LAST_MODIFIED;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    // A date matches Last-Modified; an entity tag only a strong ETag (RFC 9110 If-Range).
    const ifRange = req.headers['if-range'];
    const etag = String(headers.etag ?? '');
    const matches =
      ifRange !== undefined &&
      ((!etag.startsWith('W/') && ifRange === etag) || ifRange === headers['last-modified']);
    let from = 0;
    if (range && mode !== 'no-ranges' && matches) {
      from = Number(range[1]);
      res.writeHead(206, {
        ...headers,
        'content-length': image.length - from,
        'content-range': `bytes ${from}-${image.length - 1}/${image.length}`,
      });
    } else res.writeHead(200, { ...headers, 'content-length': image.length });
    const rest = image.subarray(from);
    if (cuts > 0) {
      cuts--;
      res.write(rest.subarray(0, rest.length >> 1), () => res.socket?.destroy());
      return;
    }
    res.end(rest);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  rmSync(root, { recursive: true, force: true });
});

afterEach(async () => {
  for (const img of await pool.list()) if (img.name.startsWith('importd-resume')) await pool.remove(img.name);
  requests.length = 0;
});

const pull = (name: string, log?: string[]) =>
  pullTar(`${base}/img.tar`, name, { pool, verify: 'checksum', log: (m) => log?.push(m) });

const leftovers = () => readdirSync(pool.poolPath);

describe('pull resumes a download cut halfway', () => {
  it('with If-Range on a strong ETag; the checksum over the whole file verifies', async () => {
    mode = 'etag';
    cuts = 1;
    const log: string[] = [];
    await pull('importd-resume-etag', log);
    expect(requests).toHaveLength(2);
    expect(requests[1]?.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(requests[1]?.range ?? '')?.[0])).toBeGreaterThan(0);
    expect(requests[1]?.['if-range']).toBe('"v1"');
    expect(log.some((m) => /resuming/.test(m))).toBe(true);
    expect(log.some((m) => /checksum .* verified/i.test(m))).toBe(true);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(`${pool.poolPath}/importd-resume-etag/big`).equals(payload)).toBe(true);
  });

  it('with If-Range on Last-Modified (a weak ETag is not used), also after several cuts', async () => {
    mode = 'weak-etag';
    cuts = 3;
    await pull('importd-resume-lm');
    expect(requests).toHaveLength(4);
    for (const r of requests.slice(1)) expect(r['if-range']).toBe(LAST_MODIFIED);
    expect(leftovers()).toEqual(['importd-resume-lm']);
  });

  it('fails with nothing left when the server does not take ranges', async () => {
    mode = 'no-ranges';
    cuts = 1;
    await expect(pull('importd-resume-none')).rejects.toThrow(/got \d+ of \d+ bytes/);
    expect(requests).toHaveLength(1);
    expect(leftovers()).toEqual([]);
  });

  it('fails with nothing left when the file changed on the server in between', async () => {
    mode = 'changed';
    cuts = 1;
    await expect(pull('importd-resume-changed')).rejects.toThrow(/changed on the server/);
    expect(requests).toHaveLength(2);
    expect(leftovers()).toEqual([]);
  });
});

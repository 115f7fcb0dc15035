import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compress, exportTar, type ImportVerify, pullRaw, pullTar } from '../src/index.js';
import { archive } from './archive.js';
import { makeTree, snapshotTree } from './tree.js';

let root: string;
let www: string;
let pool: ImagePool;
let server: Server;
let base: string;
let keyring: string;
let otherKeyring: string;
/** Paths the server cuts off halfway, or trickles slowly. */
const cut = new Set<string>();
const slow = new Set<string>();

async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function gpg(home: string, ...args: string[]): Buffer {
  return execFileSync('gpg', [
    '--homedir',
    home,
    '--batch',
    '--yes',
    '--pinentry-mode',
    'loopback',
    '--passphrase',
    '',
    ...args,
  ]);
}

function makeKey(name: string): string {
  const home = mkdtempSync(`${root}/gnupg-`);
  gpg(home, '--quick-gen-key', `${name} <${name}@imp.invalid>`, 'ed25519', 'sign', 'never');
  writeFileSync(`${home}/pubring.bin`, gpg(home, '--export'));
  return home;
}

/** A directory served over HTTP: the image, SHA256SUMS, its signature. */
function publish(dir: string, files: Record<string, Buffer>, signer: string, sums = files): void {
  mkdirSync(`${www}/${dir}`, { recursive: true });
  for (const [n, b] of Object.entries(files)) writeFileSync(`${www}/${dir}/${n}`, b);
  const text = Object.entries(sums)
    .map(([n, b]) => `${sha(b)}  ${n}\n`)
    .join('');
  writeFileSync(`${www}/${dir}/SHA256SUMS`, text);
  gpg(signer, '--detach-sign', '-o', `${www}/${dir}/SHA256SUMS.gpg`, `${www}/${dir}/SHA256SUMS`);
}

function assertEmptyPool(): void {
  expect(readdirSync(pool.poolPath).filter((n) => n !== 'imp-src')).toEqual([]);
}

let tarXz: Buffer;
let raw: Buffer;
let signer: string;

beforeAll(async () => {
  root = mkdtempSync(`${tmpdir()}/imp-pull-`);
  www = `${root}/www`;
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
  makeTree(`${pool.poolPath}/imp-src`);
  tarXz = await collect(await exportTar('imp-src', { pool, format: 'xz' }));
  signer = makeKey('imp-signer');
  keyring = `${signer}/pubring.bin`;
  otherKeyring = `${makeKey('imp-other')}/pubring.bin`;
  execFileSync('truncate', ['-s', '8M', `${root}/disk.raw`]);
  execFileSync('dd', [
    'if=/dev/urandom',
    `of=${root}/disk.raw`,
    'bs=4K',
    'count=10',
    'seek=100',
    'conv=notrunc',
    'status=none',
  ]);
  raw = await collect(
    (async function* () {
      yield readFileSync(`${root}/disk.raw`);
    })(),
  );
  publish('good', { 'imp.tar.xz': tarXz, 'imp.nspawn': Buffer.from('[Exec]\nBoot=yes\n') }, signer);
  const rawZst = await collect(
    compress(
      'zstd',
      (async function* () {
        yield raw;
      })(),
    ),
  );
  publish('raw', { 'disk.raw.zst': rawZst }, signer);
  // The image changed after SHA256SUMS was made and signed.
  // A valid archive, so only the checksum can tell.
  const tampered = await collect(
    compress(
      'xz',
      (async function* () {
        yield archive([{ path: 'evil', data: 'x' }]);
      })(),
    ),
  );
  publish('tampered-image', { 'imp.tar.xz': tampered }, signer, { 'imp.tar.xz': tarXz });
  // SHA256SUMS edited after signing (it now matches the tampered image).
  publish('tampered-sums', { 'imp.tar.xz': tampered }, signer, { 'imp.tar.xz': tarXz });
  writeFileSync(`${www}/tampered-sums/SHA256SUMS`, `${sha(tampered)}  imp.tar.xz\n`);
  // Only a per-file checksum.
  mkdirSync(`${www}/single`);
  writeFileSync(`${www}/single/imp.tar.xz`, tarXz);
  writeFileSync(`${www}/single/imp.tar.xz.sha256`, `${sha(tarXz)}  imp.tar.xz\n`);
  // 2 MiB of incompressible data, so a cut or a cancel lands mid-stream.
  publish('big', { 'imp.tar': archive([{ path: 'random', data: randomBytes(2 << 20) }]) }, signer);
  cut.add('/big/imp.tar?cut');
  slow.add('/big/imp.tar?slow');
  server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/redirect/imp.tar.xz') {
      res.writeHead(302, { location: '/good/imp.tar.xz' });
      res.end();
      return;
    }
    const path = url.split('?')[0]!;
    let data: Buffer;
    try {
      data = readFileSync(`${www}${decodeURIComponent(path)}`);
    } catch {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-length': data.length });
    if (cut.has(url)) {
      res.write(data.subarray(0, data.length >> 1), () => res.socket?.destroy());
      return;
    }
    if (slow.has(url)) {
      let off = 0;
      const t = setInterval(() => {
        if (res.destroyed || off >= data.length) {
          clearInterval(t);
          res.end();
          return;
        }
        res.write(data.subarray(off, off + 65536));
        off += 65536;
      }, 20);
      return;
    }
    res.end(data);
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
  for (const img of await pool.list()) if (img.name.startsWith('imp-p')) await pool.remove(img.name);
  for (const n of readdirSync(pool.poolPath)) if (n.endsWith('.nspawn')) rmSync(`${pool.poolPath}/${n}`);
});

const opts = (verify: ImportVerify) => ({ pool, verify, keyrings: [keyring] });

describe('pull-tar and pull-raw from a loopback HTTP server', () => {
  for (const verify of ['no', 'checksum', 'signature'] as const) {
    it(`pulls with --verify=${verify}`, async () => {
      const r = await pullTar(`${base}/good/imp.tar.xz`, 'imp-pulled', opts(verify));
      expect(snapshotTree(r.path)).toEqual(snapshotTree(`${pool.poolPath}/imp-src`));
      expect(readFileSync(`${pool.poolPath}/imp-pulled.nspawn`, 'utf8')).toContain('Boot=yes');
    });
  }

  it('verifies a <file>.sha256 when there is no SHA256SUMS, and follows redirects', async () => {
    await pullTar(`${base}/single/imp.tar.xz`, 'imp-p1', opts('checksum'));
    // As systemd: checksums are looked up next to the URL given, so verify=no across the redirect.
    await pullTar(`${base}/redirect/imp.tar.xz`, 'imp-p2', opts('no'));
    expect((await pool.get('imp-p1'))?.type).toBe('directory');
    expect((await pool.get('imp-p2'))?.type).toBe('directory');
  });

  it('pulls a raw image bit-identical and sparse', async () => {
    const r = await pullRaw(`${base}/raw/disk.raw.zst`, 'imp-praw', opts('signature'));
    expect(readFileSync(r.path).equals(raw)).toBe(true);
  });

  it('refuses a tampered image (checksum and signature modes): nothing in the pool', async () => {
    await expect(pullTar(`${base}/tampered-image/imp.tar.xz`, 'imp-pbad', opts('checksum'))).rejects.toThrow(
      /SHA-256/,
    );
    assertEmptyPool();
    await expect(pullTar(`${base}/tampered-image/imp.tar.xz`, 'imp-pbad', opts('signature'))).rejects.toThrow(
      /SHA-256/,
    );
    assertEmptyPool();
  });

  it('refuses a tampered SHA256SUMS and a signature by another key', async () => {
    await expect(pullTar(`${base}/tampered-sums/imp.tar.xz`, 'imp-pbad', opts('signature'))).rejects.toThrow(
      /[Ss]ignature/,
    );
    assertEmptyPool();
    await expect(
      pullTar(`${base}/good/imp.tar.xz`, 'imp-pbad', { pool, verify: 'signature', keyrings: [otherKeyring] }),
    ).rejects.toThrow(/[Ss]ignature|key/);
    assertEmptyPool();
  });

  it('leaves no partial image after a download cut halfway', async () => {
    await expect(pullTar(`${base}/big/imp.tar?cut`, 'imp-pcut', opts('no'))).rejects.toThrow();
    assertEmptyPool();
  });

  it('leaves no partial image after a cancel', async () => {
    const ac = new AbortController();
    let seen = 0;
    const p = pullTar(`${base}/big/imp.tar?slow`, 'imp-pcancel', {
      ...opts('no'),
      signal: ac.signal,
      onProgress: (n) => {
        seen = n;
        if (n > 200_000) ac.abort();
      },
    });
    await expect(p).rejects.toThrow(/cancel|abort/i);
    expect(seen).toBeGreaterThan(200_000);
    expect(seen).toBeLessThan(2 << 20);
    assertEmptyPool();
  });
});

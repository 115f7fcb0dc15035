import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import { compress, exportTar, pullRaw, pullTar } from '../src/index.js';
import { escapeForFilename, keptName, removeKept } from '../src/pull/keep.js';
import { type ImportdProc, startImportd, TS } from './importd-proc.js';
import { makeTree, snapshotTree } from './tree.js';

/**
 * --keep-download (importctl, machinectl, and the flag 4 of import1's
 * PullTarEx/PullRawEx): the verified download stays as a hidden read-only
 * copy named `.tar-<URL>.<ETag>` / `.raw-<URL>.<ETag>.raw` (systemd-pull's
 * names), the image is a separate copy of it, a failed verification keeps
 * nothing, and without the flag nothing is kept.
 */

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const IMPORTCTL = join(repo, 'packages/importd/src/importctl.ts');
const MACHINECTL = join(repo, 'packages/machined/src/machinectl.ts');

let root: string;
let pool: ImagePool;
let bus: PrivateBus;
let daemon: ImportdProc | undefined;
const daemonLog = () => daemon?.log() ?? '';
let server: Server;
let base: string;
const files = new Map<string, { data: Buffer; etag?: string }>();
const requests: { url: string; ifNoneMatch?: string }[] = [];

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** Runs a CLI asynchronously (the HTTP server runs in this process). */
function cli(entry: string, ...args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [...TS, entry, ...args], {
      env: bus.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout?.on('data', (d) => (out += d));
    p.stderr?.on('data', (d) => (out += d));
    p.on('exit', (status) => resolve({ status, out }));
  });
}

const kept = () => readdirSync(pool.poolPath).filter((n) => n.startsWith('.tar-') || n.startsWith('.raw-'));
const clearKept = () => {
  for (const n of kept()) removeKept(`${pool.poolPath}/${n}`, n.startsWith('.raw-') ? 'raw' : 'tar');
};

beforeAll(async () => {
  root = mkdtempSync(`${tmpdir()}/import3-keep-`);
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
  makeTree(`${pool.poolPath}/import3-src`);
  const tarXz = await collect(await exportTar('import3-src', { pool, format: 'xz' }));
  const raw = Buffer.alloc(3 << 20);
  raw.write('import3 raw image', 1 << 20);
  const rawXz = await collect(
    compress(
      'xz',
      (async function* () {
        yield raw;
      })(),
    ),
  );
  files.set('/img/import3-keep.tar.xz', { data: tarXz, etag: '"v1"' });
  files.set('/img/import3-disk.raw.xz', { data: rawXz, etag: 'W/"r/1"' });
  files.set('/img/import3-noetag.tar.xz', { data: tarXz });
  files.set('/img/SHA256SUMS', {
    data: Buffer.from(
      `${sha(tarXz)}  import3-keep.tar.xz\n${sha(rawXz)}  import3-disk.raw.xz\n${sha(tarXz)}  import3-noetag.tar.xz\n`,
    ),
  });
  files.set('/bad/import3-keep.tar.xz', { data: tarXz, etag: '"bad"' });
  files.set('/bad/SHA256SUMS', { data: Buffer.from(`${'0'.repeat(64)}  import3-keep.tar.xz\n`) });
  server = createServer((req, res) => {
    const f = files.get(req.url ?? '');
    if (!f) {
      res.writeHead(404);
      res.end();
      return;
    }
    const inm = req.headers['if-none-match'];
    requests.push({ url: req.url ?? '', ifNoneMatch: typeof inm === 'string' ? inm : undefined });
    if (f.etag && typeof inm === 'string' && inm.split(', ').includes(f.etag)) {
      res.writeHead(304, { etag: f.etag });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-length': f.data.length, ...(f.etag ? { etag: f.etag } : {}) });
    res.end(f.data);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  bus = await startPrivateBus();
  daemon = await startImportd(root, bus.env);
}, 60_000);

afterAll(async () => {
  server?.close();
  await daemon?.stop();
  await bus?.stop();
  if (root) {
    clearKept();
    rmSync(root, { recursive: true, force: true });
  }
});

describe('--keep-download', () => {
  beforeEach(clearKept);
  it("names the kept copy as systemd-pull does (URL and ETag escaped, a hash past systemd's length)", () => {
    const port = new URL(base).port;
    expect(keptName('/p', 'tar', `${base}/img/import3-keep.tar.xz`, '"v1"')).toBe(
      `.tar-http:\\x2f\\x2f127\\x2e0\\x2e0\\x2e1:${port}\\x2fimg\\x2fimport3-keep\\x2etar\\x2exz.\\x22v1\\x22`,
    );
    expect(keptName('/p', 'raw', 'http://h/a.raw', undefined)).toBe(
      '.raw-http:\\x2f\\x2fh\\x2fa\\x2eraw.raw',
    );
    // Not a valid ETag (unquoted): left out, as systemd does.
    expect(keptName('/p', 'raw', 'http://h/a.raw', 'abc')).toBe('.raw-http:\\x2f\\x2fh\\x2fa\\x2eraw.raw');
    expect(escapeForFilename("a#b'c\\d\u00e9\n")).toBe('a\\x23b\\x27c\\x5cd\\xc3\\xa9\\x0a');
    const long = keptName('/p', 'tar', `http://h/${'x'.repeat(300)}`, '"e"');
    expect(long).toMatch(/^\.tar-[0-9a-f]{16}\.\\x22e\\x22$/);
  });

  it('keeps a read-only pristine tree next to the image (library), and nothing without the flag', async () => {
    const url = `${base}/img/import3-keep.tar.xz`;
    await pullTar(url, 'import3-keep-lib', { pool, verify: 'checksum', keepDownload: true });
    const name = keptName(pool.poolPath, 'tar', url, '"v1"');
    expect(kept()).toEqual([name]);
    const k = `${pool.poolPath}/${name}`;
    const img = `${pool.poolPath}/import3-keep-lib`;
    // The same tree, read-only by the immutable flag (ext4 /tmp), its own modes intact.
    expect(snapshotTree(k)).toEqual(snapshotTree(`${pool.poolPath}/import3-src`));
    expect(() => writeFileSync(`${k}/new`, 'x')).toThrow(/EPERM/);
    // The image is a copy: changing it leaves the kept download as it was.
    writeFileSync(`${img}/changed`, 'x');
    expect(readdirSync(k)).not.toContain('changed');
    clearKept();
    await pullTar(url, 'import3-keep-lib2', { pool, verify: 'checksum' });
    expect(kept()).toEqual([]);
    // Without an ETag, the name has none.
    const noTag = `${base}/img/import3-noetag.tar.xz`;
    await pullTar(noTag, 'import3-keep-lib3', { pool, verify: 'checksum', keepDownload: true });
    expect(kept()).toEqual([keptName(pool.poolPath, 'tar', noTag)]);
    clearKept();
  });

  it('a later pull of the same URL offers the kept ETag and, on 304, copies the kept download', async () => {
    const url = `${base}/img/import3-keep.tar.xz`;
    await pullTar(url, 'import3-keep-304a', { pool, verify: 'checksum', keepDownload: true });
    requests.length = 0;
    const logs: string[] = [];
    await pullTar(url, 'import3-keep-304b', {
      pool,
      verify: 'checksum',
      keepDownload: true,
      log: (m) => logs.push(m),
    });
    expect(requests.find((r) => r.url === '/img/import3-keep.tar.xz')?.ifNoneMatch).toBe('"v1"');
    expect(logs.join('\n')).toMatch(/already downloaded/);
    expect(snapshotTree(`${pool.poolPath}/import3-keep-304b`)).toEqual(
      snapshotTree(`${pool.poolPath}/import3-src`),
    );
    // A writable image, not a read-only copy of the kept one.
    writeFileSync(`${pool.poolPath}/import3-keep-304b/new`, 'x');
    // The server's file changed: a new ETag, a full download, a second kept copy.
    files.get('/img/import3-keep.tar.xz')!.etag = '"v2"';
    try {
      await pullTar(url, 'import3-keep-304c', { pool, verify: 'checksum', keepDownload: true });
      expect(kept().sort()).toEqual(
        [keptName(pool.poolPath, 'tar', url, '"v1"'), keptName(pool.poolPath, 'tar', url, '"v2"')].sort(),
      );
    } finally {
      files.get('/img/import3-keep.tar.xz')!.etag = '"v1"';
    }
    // Without --keep-download, no ETag is offered.
    requests.length = 0;
    await pullTar(url, 'import3-keep-304d', { pool, verify: 'checksum' });
    expect(requests.find((r) => r.url === '/img/import3-keep.tar.xz')?.ifNoneMatch).toBeUndefined();
  });

  it('keeps nothing when the verification fails', async () => {
    const r = await pullTar(`${base}/bad/import3-keep.tar.xz`, 'import3-keep-bad', {
      pool,
      verify: 'checksum',
      keepDownload: true,
    }).catch((e: unknown) => e);
    expect(r).toBeInstanceOf(Error);
    expect(
      readdirSync(pool.poolPath).filter((n) => n.includes('import3-keep-bad') || n.startsWith('.')),
    ).toEqual([]);
  });

  it('importctl keeps by default and not with -N; machinectl with --keep-download=yes (raw, through import1)', async () => {
    const tarUrl = `${base}/img/import3-keep.tar.xz`;
    const a = await cli(IMPORTCTL, 'pull-tar', '--verify=checksum', tarUrl, 'import3-keep-ctl');
    expect(a.status, `${a.out}\n${daemonLog()}`).toBe(0);
    expect(kept()).toEqual([keptName(pool.poolPath, 'tar', tarUrl, '"v1"')]);
    clearKept();
    const b = await cli(IMPORTCTL, '-N', 'pull-tar', '--verify=checksum', tarUrl, 'import3-keep-ctl-n');
    expect(b.status, b.out).toBe(0);
    const c = await cli(
      IMPORTCTL,
      '--keep-download=no',
      'pull-tar',
      '--verify=checksum',
      tarUrl,
      'import3-keep-ctl-no',
    );
    expect(c.status, c.out).toBe(0);
    expect(kept()).toEqual([]);
    expect(readdirSync(pool.poolPath)).toEqual(
      expect.arrayContaining(['import3-keep-ctl', 'import3-keep-ctl-n', 'import3-keep-ctl-no']),
    );

    const rawUrl = `${base}/img/import3-disk.raw.xz`;
    const m = await cli(
      MACHINECTL,
      'pull-raw',
      '--verify=checksum',
      '--keep-download=yes',
      rawUrl,
      'import3-keep-raw',
    );
    expect(m.status, `${m.out}\n${daemonLog()}`).toBe(0);
    const name = keptName(pool.poolPath, 'raw', rawUrl, 'W/"r/1"');
    expect(name).toMatch(/^\.raw-.*\.W\\x2f\\x22r\\x2f1\\x22\.raw$/);
    expect(kept()).toEqual([name]);
    const k = `${pool.poolPath}/${name}`;
    expect(readFileSync(k).equals(readFileSync(`${pool.poolPath}/import3-keep-raw.raw`))).toBe(true);
    expect(statSync(k).mode & 0o222).toBe(0);
    clearKept();
    const m2 = await cli(MACHINECTL, 'pull-raw', '--verify=checksum', rawUrl, 'import3-keep-raw2');
    expect(m2.status, m2.out).toBe(0);
    expect(kept()).toEqual([]);
    const bad = await cli(MACHINECTL, 'pull-raw', '--keep-download=maybe', rawUrl);
    expect(bad.status).toBe(1);
    expect(bad.out).toMatch(/maybe/);
    // The raw pull from the library too.
    await pullRaw(rawUrl, 'import3-keep-raw3', { pool, verify: 'checksum', keepDownload: true });
    expect(kept()).toEqual([name]);
    clearKept();
  }, 120_000);
});

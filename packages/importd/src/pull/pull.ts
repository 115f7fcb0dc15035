import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { InvalidArgumentError } from '@sd/sys';
import { VerificationError } from '../errors.js';
import { fileSource } from '../io.js';
import { type ImportOptions, type ImportResult, importFs, importRaw, importTar } from '../transfers.js';
import type { ImportVerify } from '../types.js';
import { fetchSmall, httpGet, httpGetRest, parseUrl, resumeInfo } from './http.js';
import { keepDownload, keptEtags, keptPath } from './keep.js';
import { expectedDigest, KEYRINGS, readKeyring, verifySignature } from './verify.js';

/**
 * pull-tar and pull-raw: download over HTTP(S) and import on the fly into a
 * hidden temporary image, hashing as the bytes go by. The checksum (and,
 * for `signature`, the signed SHA256SUMS) is fetched and checked before the
 * image; the digest is compared before the rename, so a tampered image
 * never appears in the pool. A `.nspawn` file next to the image comes too.
 */

export interface PullOptions extends ImportOptions {
  verify: ImportVerify;
  /** Keyrings to check signatures with, first existing wins (systemd's by default). */
  keyrings?: readonly string[];
  /** Total size known from the server (Content-Length), for progress. */
  onSize?: (bytes: number | undefined) => void;
  /** How often a lost connection is resumed where the server allows it (default 5). */
  resumeAttempts?: number;
  /** Keep the verified download as a hidden read-only copy in the pool (systemd's `.tar-<URL>.<ETag>`). */
  keepDownload?: boolean;
}

const SMALL = 1024 * 1024;

/** The image name systemd derives from a URL: the file name without .tar/.raw and compression suffixes. */
export function imageNameFromUrl(url: string): string {
  const base = decodeURIComponent(parseUrl(url).pathname.split('/').pop() ?? '');
  const name = base.replace(/(\.(xz|gz|bz2|zst|tgz))$/, '').replace(/\.(tar|raw|qcow2|img)$/, '');
  if (name === '') throw new InvalidArgumentError(`Cannot derive an image name from ${JSON.stringify(url)}`);
  return name;
}

interface Expected {
  digest: string;
  /** The (verified) SHA256SUMS, reused for the .nspawn file. */
  sums?: Buffer;
}

async function expectedSha256(
  url: URL,
  file: string,
  verify: ImportVerify,
  opts: PullOptions,
): Promise<Expected | undefined> {
  if (verify === 'no') return undefined;
  const sumsUrl = new URL('SHA256SUMS', url).href;
  const sums = await fetchSmall(sumsUrl, SMALL, opts.signal);
  if (verify === 'signature') {
    if (!sums) throw new VerificationError(`${sumsUrl} is missing: cannot verify the signature`);
    const sig = await fetchSmall(`${sumsUrl}.gpg`, SMALL, opts.signal);
    if (!sig) throw new VerificationError(`${sumsUrl}.gpg is missing: cannot verify the signature`);
    await verifySignature(sums, sig, readKeyring(opts.keyrings ?? KEYRINGS));
    opts.log?.('Signature of SHA256SUMS verified.');
    return { digest: expectedDigest(sums, file, sumsUrl), sums };
  }
  if (sums) return { digest: expectedDigest(sums, file, sumsUrl), sums };
  const one = await fetchSmall(`${url.href}.sha256`, SMALL, opts.signal);
  if (!one) throw new VerificationError(`Neither ${sumsUrl} nor ${url.href}.sha256 exists: cannot verify`);
  const m = /^([0-9a-fA-F]{64})\b/.exec(one.toString('utf8').trim());
  if (!m) throw new VerificationError(`${url.href}.sha256 holds no SHA-256 checksum`);
  return { digest: m[1]!.toLowerCase() };
}

async function pull(
  kind: 'tar' | 'raw',
  url: string,
  name: string,
  opts: PullOptions,
): Promise<ImportResult> {
  const u = parseUrl(url);
  const file = decodeURIComponent(u.pathname.split('/').pop() ?? '');
  const expected = await expectedSha256(u, file, opts.verify, opts);
  const want = expected?.digest;
  // A download kept earlier is offered to the server by its ETag; a 304 means it is still current.
  const old = opts.keepDownload ? keptEtags(opts.pool.poolPath, kind, u.href) : [];
  const res = await httpGet(u.href, {
    signal: opts.signal,
    ...(old.length > 0 && { headers: { 'if-none-match': old.join(', ') }, accept: [200, 304] }),
  });
  if (res.statusCode === 304) {
    res.resume();
    const etag = res.headers.etag ?? (old.length === 1 ? old[0] : undefined);
    const kept = etag !== undefined ? keptPath(opts.pool.poolPath, kind, u.href, etag) : undefined;
    if (!kept)
      throw new VerificationError(`${u.href}: the server says not modified, but no kept download matches`);
    opts.log?.(`Image already downloaded (${kept}): skipping the download.`);
    const r =
      kind === 'tar' ? await importFs(kept, name, opts) : await importRaw(fileSource(kept), name, opts);
    await pullSettings(u, file, name, expected, opts).catch((e) =>
      opts.log?.(`Cannot fetch the .nspawn file: ${(e as Error).message}`),
    );
    return r;
  }
  const length = Number(res.headers['content-length']);
  opts.onSize?.(Number.isFinite(length) ? length : undefined);
  const hash = createHash('sha256');
  const resume = resumeInfo(res);
  let received = 0;
  // The image streams into the import as it arrives; a connection lost
  // halfway is picked up with a Range request where the server allows it,
  // so the import sees one unbroken stream (and the hash covers it all).
  async function* body(): AsyncGenerator<Buffer> {
    let current = res;
    for (let attempt = 0; ; attempt++) {
      let lost: unknown;
      try {
        for await (const c of current as AsyncIterable<Buffer>) {
          hash.update(c);
          received += c.length;
          yield c;
        }
      } catch (e) {
        lost = e;
      } finally {
        current.destroy();
      }
      if (lost && (opts.signal?.aborted || !Number.isFinite(length))) throw lost;
      if (received > length) throw new VerificationError(`${u.href}: got more than ${length} bytes`);
      if (!Number.isFinite(length) || received === length) return;
      if (!resume || attempt >= (opts.resumeAttempts ?? 5))
        throw new VerificationError(`${u.href}: got ${received} of ${length} bytes`, { cause: lost });
      opts.log?.(`Connection lost after ${received} of ${length} bytes; resuming.`);
      await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      current = await httpGetRest(u.href, received, resume, opts.signal);
    }
  }
  const beforeCommit = async (tempPath: string) => {
    await opts.beforeCommit?.(tempPath);
    if (want !== undefined) {
      const got = hash.digest('hex');
      if (got !== want)
        throw new VerificationError(`SHA-256 of ${file} is ${got}, expected ${want}: refusing the image`);
      opts.log?.(`SHA-256 checksum of ${file} verified.`);
    }
    if (opts.keepDownload) {
      // Only a verified download is kept; a failure here discards the image too.
      const etag = res.headers.etag;
      const kept = await keepDownload(opts.pool.poolPath, kind, tempPath, u.href, etag);
      opts.log?.(`Kept the download as ${kept}.`);
    }
  };
  const importer = kind === 'tar' ? importTar : importRaw;
  const r = await importer(body(), name, { ...opts, beforeCommit });
  await pullSettings(u, file, name, expected, opts).catch((e) =>
    opts.log?.(`Cannot fetch the .nspawn file: ${(e as Error).message}`),
  );
  return r;
}

/** The `.nspawn` file next to the image, when the server has one (checked against SHA256SUMS when verifying). */
async function pullSettings(
  u: URL,
  file: string,
  name: string,
  expected: Expected | undefined,
  opts: PullOptions,
): Promise<void> {
  const base = file.replace(/(\.(xz|gz|bz2|zst))$/, '').replace(/\.(tar|raw|qcow2)$/, '');
  const nspawnName = `${base}.nspawn`;
  const data = await fetchSmall(new URL(nspawnName, u).href, SMALL, opts.signal);
  if (!data) return;
  if (expected) {
    // Checked against the SHA256SUMS already fetched (and verified), not a second download of it.
    const want = expected.sums ? expectedDigest(expected.sums, nspawnName, 'SHA256SUMS') : undefined;
    if (createHash('sha256').update(data).digest('hex') !== want)
      throw new VerificationError(`${nspawnName} does not match SHA256SUMS`);
  }
  writeFileSync(`${opts.pool.poolPath}/${name}.nspawn`, data, { mode: 0o644 });
}

export const pullTar = (url: string, name: string, opts: PullOptions) => pull('tar', url, name, opts);
export const pullRaw = (url: string, name: string, opts: PullOptions) => pull('raw', url, name, opts);

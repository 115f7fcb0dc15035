import type { IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { InvalidArgumentError, SdError } from '@sd/sys';

/**
 * HTTP(S) downloads with Node's own client: redirects followed (up to 10,
 * https never downgraded to http), status checked, the body as a stream of
 * chunks with backpressure. A connection that ends before Content-Length
 * is an error (Node reports it as "aborted").
 */

export class HttpError extends SdError {
  readonly status: number;
  constructor(url: string, status: number, options?: ErrorOptions) {
    super(status === 404 ? 'ENOENT' : 'EIO', `${url}: HTTP ${status}`, options);
    this.status = status;
  }
}

export function parseUrl(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new InvalidArgumentError(`Invalid URL ${JSON.stringify(text)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new InvalidArgumentError(`URL ${JSON.stringify(text)} is not http or https`);
  return u;
}

export interface GetOptions {
  signal?: AbortSignal;
  headers?: Record<string, string>;
  maxRedirects?: number;
  /** Statuses taken as success (default: 200). */
  accept?: readonly number[];
}

export async function httpGet(url: string, options: GetOptions = {}): Promise<IncomingMessage> {
  let u = parseUrl(url);
  for (let hops = 0; ; hops++) {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
        method: 'GET',
        headers: { 'user-agent': 'sd-importd', ...options.headers },
        signal: options.signal,
      });
      req.once('response', resolve);
      req.once('error', (e) => reject(new SdError('EIO', `${u.href}: ${e.message}`, { cause: e })));
      req.end();
    });
    const status = res.statusCode ?? 0;
    if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
      res.resume();
      if (hops >= (options.maxRedirects ?? 10)) throw new SdError('ELOOP', `${url}: too many redirects`);
      const next = new URL(res.headers.location, u);
      if (u.protocol === 'https:' && next.protocol !== 'https:')
        throw new SdError('EPERM', `${url}: refusing a redirect from https to ${next.protocol}`);
      u = parseUrl(next.href);
      continue;
    }
    if (!(options.accept ?? [200]).includes(status)) {
      res.resume();
      throw new HttpError(u.href, status);
    }
    return res;
  }
}

/** A small file (checksums, signatures, .nspawn) in memory; undefined on 404. */
export async function fetchSmall(
  url: string,
  limit: number,
  signal?: AbortSignal,
): Promise<Buffer | undefined> {
  let res: IncomingMessage;
  try {
    res = await httpGet(url, { signal });
  } catch (e) {
    if (e instanceof HttpError && e.status === 404) return undefined;
    throw e;
  }
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      res.destroy();
      throw new SdError('EFBIG', `${url} is larger than ${limit} bytes`);
    }
    parts.push(c);
  }
  return Buffer.concat(parts);
}

/**
 * What a resumed request needs from the first response: the server takes
 * byte ranges, gives the full length, and names the version with a strong
 * ETag or a Last-Modified date (If-Range accepts nothing weaker). Undefined
 * when the server does not allow resuming.
 */
export interface ResumeInfo {
  length: number;
  validator: string;
}

export function resumeInfo(res: IncomingMessage): ResumeInfo | undefined {
  const length = Number(res.headers['content-length']);
  if (!Number.isSafeInteger(length) || length <= 0) return undefined;
  if ((res.headers['accept-ranges'] ?? '').toLowerCase() !== 'bytes') return undefined;
  const etag = res.headers.etag;
  const validator = etag && !etag.startsWith('W/') ? etag : res.headers['last-modified'];
  return validator ? { length, validator } : undefined;
}

/**
 * The rest of `url` from byte `from` on, if it is still the version the
 * validator names (If-Range): the server must answer 206 with exactly that
 * range; a 200 means the file changed and is an error, not a restart.
 */
export async function httpGetRest(
  url: string,
  from: number,
  info: ResumeInfo,
  signal?: AbortSignal,
): Promise<IncomingMessage> {
  const res = await httpGet(url, {
    signal,
    headers: { range: `bytes=${from}-`, 'if-range': info.validator },
    accept: [200, 206],
  });
  const want = `bytes ${from}-${info.length - 1}/${info.length}`;
  if (res.statusCode !== 206 || res.headers['content-range'] !== want) {
    res.destroy();
    throw new SdError(
      'ESTALE',
      `${url} changed on the server while it was downloaded (asked for ${want}, got ${
        res.statusCode === 206 ? res.headers['content-range'] : `HTTP ${res.statusCode}`
      })`,
    );
  }
  return res;
}

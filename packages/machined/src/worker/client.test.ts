import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdError } from '@sd/sys';
import { afterAll, describe, expect, it } from 'vitest';
import { BusError } from '../bus/errors.js';
import { imagePoolPaths } from '../images/paths.js';
import { OperationCancelledError, OperationPool } from './client.js';
import { decode, encode, errorFromWire, errorToWire } from './protocol.js';

// The worker processes of long operations, for real: a pool method run in
// one, its errors carried back, the cap, cancellation.

const root = mkdtempSync(join(tmpdir(), 'sd-robust-worker-'));
const paths = imagePoolPaths(root);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('worker protocol', () => {
  it('carries bigints and errors across', () => {
    expect(decode(encode({ a: 2n ** 64n - 1n, b: [1n] }))).toEqual({ a: 2n ** 64n - 1n, b: [1n] });
    const e = errorFromWire(errorToWire(new BusError('org.freedesktop.machine1.NoSuchImage', 'gone')));
    expect(e).toBeInstanceOf(BusError);
    expect((e as BusError).busName).toBe('org.freedesktop.machine1.NoSuchImage');
    const s = errorFromWire(errorToWire(new SdError('EROFS', 'read-only')));
    expect([(s as SdError).code, s.message]).toEqual(['EROFS', 'read-only']);
  });
});

describe('worker processes', () => {
  it('removes an image in a worker and answers its errors as the pool would', async () => {
    const img = join(root, 'var/lib/machines/robw');
    mkdirSync(join(img, 'etc'), { recursive: true });
    writeFileSync(join(img, 'etc/os-release'), 'ID=x\n');
    const pool = new OperationPool(4);
    await pool.start({ op: 'pool', paths, method: 'remove', args: ['robw'] }).result;
    expect(existsSync(img)).toBe(false);
    const err = (await pool
      .start({ op: 'pool', paths, method: 'remove', args: ['robw'] })
      .result.catch((e: unknown) => e)) as SdError;
    expect([err.code, err.message]).toEqual(['ENOENT', "No image 'robw' known"]);
    expect(pool.running).toBe(0);
  });

  it('refuses more than its cap at once, and a cancelled operation ends as cancelled', async () => {
    const pool = new OperationPool(1, 2000);
    const first = pool.start({ op: 'pool', paths, method: 'remove', args: ['robnone'] });
    expect(() => pool.start({ op: 'pool', paths, method: 'remove', args: ['robnone'] })).toThrow(
      /Too many ongoing operations/,
    );
    first.cancel('test');
    await expect(first.result).rejects.toBeInstanceOf(OperationCancelledError);
    expect(pool.running).toBe(0);
  });

  it('a cancel that comes once the work is done answers the work, not ECANCELED over it', async () => {
    const img = join(root, 'var/lib/machines/robdone');
    mkdirSync(join(img, 'etc'), { recursive: true });
    const pool = new OperationPool(4, 2000);
    const op = pool.start({ op: 'pool', paths, method: 'remove', args: ['robdone'] });
    for (let i = 0; i < 500 && existsSync(img); i++) await new Promise((r) => setTimeout(r, 2));
    expect(existsSync(img)).toBe(false);
    op.cancel('too late');
    await expect(op.result).resolves.toBeUndefined();
  });
});

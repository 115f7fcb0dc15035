import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { O, S_IF } from '../src/constants.js';
import { closeQuietly } from '../src/fd/fd.js';
import { makedev, mknodat } from '../src/fs/at.js';
import {
  NotRegularFileError,
  openRegularInRoot,
  readRegularInRoot,
  writeRegularInRoot,
} from '../src/fs/regular.js';
import { openRoot } from '../src/fs/resolve.js';

// Regular files only, inside the root, never blocking: as root on the real kernel.
describe('regular files in a tree', () => {
  let base: string;
  let root: string;
  let rootFd: number;
  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'paths-regular-'));
    root = join(base, 'root');
    mkdirSync(`${root}/etc`, { recursive: true });
    writeFileSync(join(base, 'canary'), 'ID=LEAK\n');
    rootFd = openRoot(root);
  });
  afterEach(() => {
    closeQuietly(rootFd);
    rmSync(base, { recursive: true, force: true });
  });

  it('reads a regular file, and undefined for a missing one', () => {
    writeFileSync(`${root}/etc/os-release`, 'ID=tree\n');
    expect(readRegularInRoot(rootFd, '/etc/os-release')?.toString()).toBe('ID=tree\n');
    expect(readRegularInRoot(rootFd, '/etc/nothing')).toBeUndefined();
  });

  it('follows links only inside the root', () => {
    symlinkSync(join(base, 'canary'), `${root}/etc/os-release`);
    expect(readRegularInRoot(rootFd, '/etc/os-release')).toBeUndefined();
    writeFileSync(`${root}/etc/real`, 'ID=inside\n');
    symlinkSync('../../../../../etc/real', `${root}/etc/rel`);
    expect(readRegularInRoot(rootFd, '/etc/rel')?.toString()).toBe('ID=inside\n');
    expect(() => readRegularInRoot(rootFd, '/etc/rel', { noFollow: true })).toThrow(NotRegularFileError);
  });

  it('refuses a FIFO without blocking, and a device node without opening it', () => {
    mknodat(rootFd, 'etc/fifo', S_IF.FIFO | 0o666);
    // A character device whose open() has an effect we can see: a tty would become ours.
    mknodat(rootFd, 'etc/null', S_IF.CHR | 0o666, makedev(1, 3));
    mknodat(rootFd, 'etc/loop', S_IF.BLK | 0o666, makedev(7, 0));
    for (const p of ['/etc/fifo', '/etc/null', '/etc/loop']) {
      expect(() => readRegularInRoot(rootFd, p)).toThrow(NotRegularFileError);
      expect(() => openRegularInRoot(rootFd, p, O.WRONLY)).toThrow(/not a regular file/);
      expect(() => writeRegularInRoot(rootFd, p, 'nameserver 192.0.2.1\n')).toThrow(NotRegularFileError);
    }
    expect(() => readRegularInRoot(rootFd, '/etc')).toThrow(/a directory, not a regular file/);
  });

  it('caps what it reads', () => {
    writeFileSync(`${root}/etc/big`, Buffer.alloc(5000, 0x41));
    expect(readRegularInRoot(rootFd, '/etc/big', { maxBytes: 5000 })?.length).toBe(5000);
    expect(() => readRegularInRoot(rootFd, '/etc/big', { maxBytes: 4999 })).toThrow(/larger than 4999/);
  });

  it('reads a file of several buffers whole, and empty ones as empty', () => {
    // 200 KiB of a pattern: more than the first 64 KiB buffer, with no two reads alike.
    const big = Buffer.alloc(200 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 10)) & 0xff;
    writeFileSync(`${root}/etc/bigger`, big);
    expect(readRegularInRoot(rootFd, '/etc/bigger')?.equals(big)).toBe(true);
    expect(readRegularInRoot(rootFd, '/etc/bigger', { maxBytes: big.length })?.length).toBe(big.length);
    expect(() => readRegularInRoot(rootFd, '/etc/bigger', { maxBytes: 100 * 1024 })).toThrow(/larger than/);
    writeFileSync(`${root}/etc/empty`, '');
    expect(readRegularInRoot(rootFd, '/etc/empty')?.length).toBe(0);
  });

  it('writes: replaces a regular file, creates a missing one, refuses a planted link', () => {
    writeFileSync(`${root}/etc/resolv.conf`, 'old contents that are longer\n');
    writeRegularInRoot(rootFd, '/etc/resolv.conf', 'new\n');
    expect(readFileSync(`${root}/etc/resolv.conf`, 'utf8')).toBe('new\n');
    writeRegularInRoot(rootFd, '/etc/localtime', 'TZif');
    expect(readFileSync(`${root}/etc/localtime`, 'utf8')).toBe('TZif');
    symlinkSync(join(base, 'canary'), `${root}/etc/hostname`);
    expect(() => writeRegularInRoot(rootFd, '/etc/hostname', 'x')).toThrow();
    expect(readFileSync(join(base, 'canary'), 'utf8')).toBe('ID=LEAK\n');
  });
});

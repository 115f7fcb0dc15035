import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unmountOrFail } from '../tools/test/unmount.js';
import { makeBusyboxTree, NSPAWN_CLI, sdNspawn } from './lib/trees.js';

// --ephemeral and --template on a btrfs file system made by the test (a
// loop-mounted image), and the overlay fallback elsewhere.

let dir: string;
let mnt: string;
let busybox: ReturnType<typeof makeBusyboxTree>;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sd-e2e-btrfs-'));
  mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  execFileSync('truncate', ['-s', '512M', join(dir, 'img')]);
  execFileSync('mkfs.btrfs', ['-q', join(dir, 'img')]);
  execFileSync('mount', ['-o', 'loop', join(dir, 'img'), mnt]);
  execFileSync('btrfs', ['-q', 'subvolume', 'create', join(mnt, 'tree')]);
  busybox = makeBusyboxTree();
  execFileSync('cp', ['-a', `${busybox.dir}/.`, join(mnt, 'tree')]);
});

afterAll(() => {
  busybox?.remove();
  // A container that is still dying may keep the file system busy for a moment: unmountOrFail retries.
  unmountOrFail(mnt);
  rmSync(dir, { recursive: true, force: true });
});

const leftovers = () => readdirSync(mnt).filter((f) => f.startsWith('.#') && !f.endsWith('.lock'));

describe('--ephemeral', () => {
  it('runs on a snapshot of a btrfs subvolume and removes it at exit', () => {
    const tree = join(mnt, 'tree');
    const r = sdNspawn([
      '-q',
      '-x',
      '-D',
      tree,
      'sh',
      '-c',
      'echo changed > /etc/os-release; echo new > /root/new; cat /etc/os-release; grep -c " / " /proc/self/mountinfo',
    ]);
    expect(r.stdout.split('\n')[0]).toBe('changed');
    expect(r.code).toBe(0);
    expect(readFileSync(join(tree, 'etc/os-release'), 'utf8')).toMatch(/BusyBox/);
    expect(existsSync(join(tree, 'root/new'))).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it('is cleaned up by the next start after sd-nspawn was killed', async () => {
    const tree = join(mnt, 'tree');
    const child = spawn(process.execPath, [NSPAWN_CLI, '-q', '--pipe', '-x', '-D', tree, 'sleep', '60'], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 100 && leftovers().length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(leftovers()).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    // The container died with it (PDEATHSIG); its snapshot is still there until the next start.
    await new Promise((r) => setTimeout(r, 300));
    expect(leftovers()).toHaveLength(1);
    const r = sdNspawn(['-q', '-x', '-D', tree, 'true']);
    expect(r.code).toBe(0);
    expect(leftovers()).toEqual([]);
  });

  it('falls back to an overlay on a file system without snapshots', () => {
    const r = sdNspawn(['-q', '-x', '-D', busybox.dir, 'sh', '-c', 'echo x > /etc/eph; cat /etc/eph']);
    expect(r.stdout).toBe('x\n');
    expect(existsSync(join(busybox.dir, 'etc/eph'))).toBe(false);
  });

  it('refuses --ephemeral with --volatile', () => {
    const r = sdNspawn(['-x', '--volatile=yes', '-D', busybox.dir, 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/may not be combined/);
  });
});

describe('--template', () => {
  it('creates the tree from a subvolume template by snapshot, once', () => {
    const target = join(mnt, 'from-template');
    let r = sdNspawn([
      '-q',
      '-D',
      target,
      `--template=${join(mnt, 'tree')}`,
      'sh',
      '-c',
      'echo mine > /root/mark',
    ]);
    expect(r.code).toBe(0);
    expect(readFileSync(join(target, 'root/mark'), 'utf8')).toBe('mine\n');
    expect(execFileSync('btrfs', ['subvolume', 'show', target], { encoding: 'utf8' })).toMatch(
      /Name:\s+from-template/,
    );
    r = sdNspawn(['-q', '-D', target, `--template=${join(mnt, 'tree')}`, 'cat', '/root/mark']);
    expect(r.stdout).toBe('mine\n');
    execFileSync('btrfs', ['-q', 'subvolume', 'delete', target]);
  });

  it('copies a plain directory template', () => {
    const target = join(dir, 'copied');
    const r = sdNspawn(['-q', '-D', target, `--template=${busybox.dir}`, 'cat', '/etc/os-release']);
    expect(r.stdout).toMatch(/BusyBox/);
    expect(readFileSync(join(target, 'etc/passwd'), 'utf8')).toMatch(/^root:/);
    writeFileSync(join(target, 'etc/x'), '');
  });
});

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree, NSPAWN_CLI, sdNspawn } from './lib/trees.js';

// sd-nspawn -i: a GPT disk image with a busybox root, made here with sfdisk and mkfs.ext4.

const ROOT_X86_64 = '4f68bce3-e8cd-4db1-96e7-fbcaf984b709';
const HOME = '933ac7e1-2eb4-4f13-b844-0e14e2aef915';
const MiB = 1024 * 1024;

let work: string;
let image: string;
let tree: ReturnType<typeof makeBusyboxTree>;

function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function mkfsAt(file: string, offset: number, size: number, content: string): void {
  const dev = sh('losetup', [
    '--find',
    '--show',
    '-o',
    String(offset),
    '--sizelimit',
    String(size),
    file,
  ]).trim();
  try {
    sh('mkfs.ext4', ['-q', '-F', '-d', content, dev]);
  } finally {
    sh('losetup', ['-d', dev]);
  }
}

/** Loop devices backed by files in our work directory. */
function ourLoops(): string[] {
  return readdirSync('/sys/block')
    .filter((d) => d.startsWith('loop'))
    .filter((d) => {
      try {
        return readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').startsWith(work);
      } catch {
        return false;
      }
    });
}

function nothingLeft(): void {
  expect(ourLoops()).toEqual([]);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  expect(mounts).not.toContain('/run/sd-nspawn/images/');
  expect(mounts).not.toContain(work);
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'sd-e2e-image-'));
  tree = makeBusyboxTree();
  const home = mkdtempSync(join(work, 'home-'));
  sh('mkdir', ['-p', join(home, 'alice')]);
  sh('sh', ['-c', `echo hello > ${join(home, 'alice/greeting')}`]);
  image = join(work, 'busybox.raw');
  sh('truncate', ['-s', String(2 * MiB + 64 * MiB + 16 * MiB), image]);
  sh(
    'sfdisk',
    ['-q', image],
    `label: gpt\nstart=2048, size=${(64 * MiB) / 512}, type=${ROOT_X86_64}, name=root\nsize=${(16 * MiB) / 512}, type=${HOME}, name=home\n`,
  );
  mkfsAt(image, MiB, 64 * MiB, tree.dir);
  mkfsAt(image, 65 * MiB, 16 * MiB, home);
}, 120_000);

afterAll(() => {
  tree?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('sd-nspawn -i IMAGE', () => {
  it("runs /bin/sh -c 'cat /etc/os-release' from a GPT image and leaves no loop device behind", () => {
    const r = sdNspawn(['-q', '-i', image, '/bin/sh', '-c', 'cat /etc/os-release; cat /home/alice/greeting']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ID=busybox\nNAME="BusyBox test tree"\nhello\n');
    expect(r.code).toBe(0);
    nothingLeft();
  });

  it('names the machine after the image and passes the exit status through', () => {
    const r = sdNspawn(['-q', '-i', image, 'sh', '-c', 'hostname; exit 7']);
    expect(r.stdout).toBe('busybox\n');
    expect(r.code).toBe(7);
    nothingLeft();
  });

  it('--read-only mounts the image read-only', () => {
    const r = sdNspawn([
      '-q',
      '--read-only',
      '-i',
      image,
      'sh',
      '-c',
      'touch /x 2>&1; touch /home/y 2>&1; echo done',
    ]);
    expect(r.stdout).toMatch(/Read-only file system[\s\S]*Read-only file system[\s\S]*done/);
    expect(r.code).toBe(0);
    nothingLeft();
  });

  it('refuses a broken image with a clear error and cleans up', () => {
    const bad = join(work, 'bad.raw');
    sh('cp', ['--sparse=always', image, bad]);
    sh('dd', ['if=/dev/zero', `of=${bad}`, 'bs=1', 'seek=600', 'count=8', 'conv=notrunc', 'status=none']);
    const r = sdNspawn(['-q', '-i', bad, 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/bad\.raw: primary GPT header \(LBA 1\): header CRC32 mismatch/);
    const none = sdNspawn(['-q', '-i', join(work, 'missing.raw'), 'true']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/missing\.raw/);
    nothingLeft();
  });

  it('unmounts what a killed sd-nspawn left mounted at the next start', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(
      process.execPath,
      [NSPAWN_CLI, '-q', '--pipe', '--read-only', '-i', image, 'sleep', '60'],
      {
        stdio: 'ignore',
      },
    );
    const mounted = () => readFileSync('/proc/self/mountinfo', 'utf8').includes('/run/sd-nspawn/images/');
    for (let i = 0; i < 100 && !mounted(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(mounted()).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    expect(mounted()).toBe(true);
    const r = sdNspawn(['-q', '--read-only', '-i', image, 'true']);
    expect(r.code, r.stderr).toBe(0);
    nothingLeft();
  });
});

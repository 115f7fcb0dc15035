import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree, NSPAWN_CLI, sdNspawn } from './lib/trees.js';

// A hostile disk image: a 0666 block-device node of a host loop device (one
// this test makes, holding a secret), as /victim and /dev/victim. Whoever
// mounts the image must not let anyone — an unprivileged host user, or the
// container — reach the host's device through it (issue 9, item 4).

const DISSECT_CLI = fileURLToPath(new URL('../packages/gpt/dist/dissect.js', import.meta.url));
const ROOT_X86_64 = '4f68bce3-e8cd-4db1-96e7-fbcaf984b709';
const MiB = 1024 * 1024;
const SECRET = 'PATHS-SECRET-ON-A-HOST-LOOP-DEVICE';

let work: string;
let image: string;
let victimFile: string;
let victimLoop: string;

function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs a shell command as nobody (uid/gid 65534). */
function asNobody(script: string) {
  return spawnSync('/bin/sh', ['-c', script], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 10_000 });
}

/** The options of the mount at `path` (mountinfo's per-mount field). */
function mountOptions(path: string): string[] {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] === path) return f[5]!.split(',');
  }
  throw new Error(`${path} is not a mount point`);
}

function victimUntouched(): void {
  expect(readFileSync(victimFile, 'utf8').startsWith(SECRET)).toBe(true);
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'paths-hostile-image-'));
  // Reachable by nobody: the test must show the image's own defences, not ours.
  chmodSync(work, 0o755);
  victimFile = join(work, 'victim.img');
  writeFileSync(victimFile, Buffer.concat([Buffer.from(SECRET), Buffer.alloc(MiB - SECRET.length)]));
  victimLoop = sh('losetup', ['--find', '--show', victimFile]).trim();
  // The host's node is root's (0660 root:disk): nobody cannot reach it directly.
  expect(asNobody(`head -c 8 ${victimLoop}`).status).not.toBe(0);
  const minor = Number(/loop(\d+)$/.exec(victimLoop)![1]);

  const tree = makeBusyboxTree('paths-hostile-tree-');
  try {
    const content = join(work, 'content');
    cpSync(tree.dir, content, { recursive: true, verbatimSymlinks: true });
    for (const p of ['victim', 'dev/victim']) {
      sh('mknod', [join(content, p), 'b', '7', String(minor)]);
      chmodSync(join(content, p), 0o666);
    }
    image = join(work, 'hostile.raw');
    sh('truncate', ['-s', String(2 * MiB + 48 * MiB), image]);
    sh(
      'sfdisk',
      ['-q', image],
      `label: gpt\nstart=2048, size=${(48 * MiB) / 512}, type=${ROOT_X86_64}, name=root\n`,
    );
    const dev = sh('losetup', [
      '--find',
      '--show',
      '-o',
      String(MiB),
      '--sizelimit',
      String(48 * MiB),
      image,
    ]).trim();
    try {
      // mke2fs -d copies the device nodes as they are.
      sh('mkfs.ext4', ['-q', '-F', '-d', content, dev]);
    } finally {
      sh('losetup', ['-d', dev]);
    }
    chmodSync(image, 0o644);
  } finally {
    tree.remove();
  }
}, 120_000);

afterAll(() => {
  if (victimLoop) spawnSync('losetup', ['-d', victimLoop]);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('a device node shipped in an image', () => {
  it('sd-dissect --mount: nobody cannot read or write the host device through it; mounts are nodev,nosuid', () => {
    const dir = join(work, 'mnt');
    mkdirSync(dir, { mode: 0o755 });
    const m = spawnSync(process.execPath, [DISSECT_CLI, '--mount', image, dir], { encoding: 'utf8' });
    expect(m.status, m.stderr).toBe(0);
    try {
      // The node is there, 0666, as the image ships it.
      expect(statSync(join(dir, 'victim')).mode & 0o777).toBe(0o666);
      const read = asNobody(`head -c ${SECRET.length} ${dir}/victim`);
      expect(read.stdout).not.toContain(SECRET);
      expect(read.status).not.toBe(0);
      const write = asNobody(`echo OWNED | dd of=${dir}/victim conv=notrunc status=none`);
      expect(write.status).not.toBe(0);
      // Not even root opens a device node on a nodev mount.
      expect(spawnSync('head', ['-c', '8', join(dir, 'victim')]).status).not.toBe(0);
      expect(mountOptions(dir)).toEqual(expect.arrayContaining(['nodev', 'nosuid']));
    } finally {
      const u = spawnSync(process.execPath, [DISSECT_CLI, '--umount', dir], { encoding: 'utf8' });
      expect(u.status, u.stderr).toBe(0);
    }
    victimUntouched();
  });

  it('sd-dissect --mount --suid: still nodev', () => {
    const dir = join(work, 'mnt-suid');
    mkdirSync(dir, { mode: 0o755 });
    const m = spawnSync(process.execPath, [DISSECT_CLI, '--mount', '--suid', image, dir], {
      encoding: 'utf8',
    });
    expect(m.status, m.stderr).toBe(0);
    try {
      expect(mountOptions(dir)).toContain('nodev');
      expect(mountOptions(dir)).not.toContain('nosuid');
      expect(asNobody(`head -c 8 ${dir}/victim`).status).not.toBe(0);
    } finally {
      spawnSync(process.execPath, [DISSECT_CLI, '--umount', dir]);
    }
  });

  for (const userns of [false, true]) {
    it(`sd-nspawn -i${userns ? ' -U' : ''}: the container and host users cannot reach it; images are root's`, async () => {
      const machine = `paths-img${userns ? '-u' : ''}`;
      const args = ['-q', '--read-only', `--machine=${machine}`, ...(userns ? ['-U'] : []), '-i', image];
      // Inside: the container's root (real root without -U) tries the node on its root file system.
      const inside = sdNspawn([
        ...args,
        'sh',
        '-c',
        `head -c ${SECRET.length} /victim && echo READ; echo OWNED | dd of=/victim conv=notrunc 2>/dev/null && echo WROTE; true`,
      ]);
      expect(inside.code, inside.stderr).toBe(0);
      expect(inside.stdout).not.toContain(SECRET);
      expect(inside.stdout).not.toMatch(/READ|WROTE/);
      victimUntouched();

      // Outside, while it runs: the image's mount under /run/sd-nspawn/images.
      const child = spawn(process.execPath, [NSPAWN_CLI, ...args, 'sleep', '5'], { stdio: 'ignore' });
      try {
        const images = '/run/sd-nspawn/images';
        let mounted: string | undefined;
        for (let i = 0; i < 100 && !mounted; i++) {
          await new Promise((r) => setTimeout(r, 100));
          mounted = readdirSync(images).find(
            (n) => n.startsWith(`${machine}.`) && !n.endsWith('.lock') && mountedAt(join(images, n)),
          );
        }
        expect(mounted).toBeDefined();
        const dir = join(images, mounted!);
        expect(statSync(images).mode & 0o777).toBe(0o700);
        expect(mountOptions(dir)).toContain('nodev');
        expect(spawnSync('head', ['-c', '8', join(dir, 'victim')]).status).not.toBe(0);
        expect(asNobody(`head -c 8 ${dir}/victim`).status).not.toBe(0);
      } finally {
        // It ends by itself (pid 1 ignores SIGTERM); a stuck one is killed.
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        if (child.exitCode === null) await new Promise((r) => child.on('exit', r));
        clearTimeout(timer);
      }
      victimUntouched();
    }, 60_000);
  }
});

function mountedAt(path: string): boolean {
  try {
    mountOptions(path);
    return true;
  } catch {
    return false;
  }
}

import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unmountOrFail } from '../../../../tools/test/unmount.js';

/**
 * Real images for integration tests, made with the tools users make them
 * with: sfdisk for the table, mkfs.* (on a loop device over the partition's
 * byte range) or mksquashfs/mkfs.erofs for the file systems.
 */

export const MiB = 1024 * 1024;

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export type TestFs = 'ext4' | 'btrfs' | 'xfs' | 'vfat' | 'squashfs' | 'erofs' | 'swap';

export interface PartSpec {
  /** GPT type GUID, or MBR type byte in hex ("83"). */
  type: string;
  sizeMiB: number;
  fs?: TestFs;
  /** Files to put in the file system: path -> contents (directories end in /). */
  files?: Record<string, string>;
  name?: string;
  /** sfdisk attrs, e.g. "GUID:60". */
  attrs?: string;
  bootable?: boolean;
  uuid?: string;
}

export interface MadePartition extends PartSpec {
  number: number;
  offset: number;
  size: number;
}

/**
 * A scratch directory; remove() also unmounts and detaches what a test left in it
 * (failing, naming the mount, when one stays busy).
 */
export function scratch(prefix = 'sd-gpt-test-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    remove() {
      for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
        const mp = line.split(' ')[4];
        if (mp?.startsWith(`${dir}/`)) unmountOrFail(mp);
      }
      for (const l of loopsOf(dir)) {
        try {
          run('losetup', ['-d', l]);
        } catch {}
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Loop devices whose backing file lies under `dir`. */
export function loopsOf(dir: string): string[] {
  const out: string[] = [];
  for (const dev of readdirSync('/sys/block').filter((d) => d.startsWith('loop'))) {
    try {
      const backing = readFileSync(`/sys/block/${dev}/loop/backing_file`, 'utf8').trim();
      if (backing.startsWith(`${dir}/`)) out.push(`/dev/${dev}`);
    } catch {}
  }
  return out;
}

/** Mount points under `dir`, from /proc/self/mountinfo. */
export function mountsOf(dir: string): Array<{ path: string; options: string; fstype: string }> {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      const sep = f.indexOf('-');
      return { path: f[4]!, options: f[5]!, fstype: f[sep + 1]! };
    })
    .filter((m) => m.path === dir || m.path.startsWith(`${dir}/`));
}

function populate(dir: string, files: Record<string, string> = {}): void {
  mkdirSync(dir, { recursive: true });
  for (const [path, content] of Object.entries(files)) {
    const p = join(dir, path);
    if (path.endsWith('/')) mkdirSync(p, { recursive: true });
    else if (content.startsWith('->')) {
      // '->TARGET': a symlink (hostile images plant them where mount points go).
      mkdirSync(join(p, '..'), { recursive: true });
      symlinkSync(content.slice(2), p);
    } else {
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, content);
    }
  }
}

function withLoop<T>(args: string[], fn: (dev: string) => T): T {
  const dev = run('losetup', ['--find', '--show', ...args]).trim();
  try {
    return fn(dev);
  } finally {
    run('losetup', ['-d', dev]);
  }
}

function xfsProto(root: string, work: string): string {
  // mkfs.xfs -p: a prototype file listing the tree.
  const lines = ['/dev/null', '0 0', 'd--755 0 0'];
  const walk = (dir: string, depth: number) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        lines.push(`${e.name} d--755 0 0`);
        walk(p, depth + 1);
        lines.push('$');
      } else lines.push(`${e.name} ---644 0 0 ${p}`);
    }
  };
  walk(root, 0);
  lines.push('$');
  const proto = join(work, 'xfs.proto');
  writeFileSync(proto, `${lines.join('\n')}\n`);
  return proto;
}

/** Makes file system `fs` with `files` over bytes [offset, offset+size) of `image`. */
export function mkfsAt(
  image: string,
  offset: number,
  size: number,
  fs: TestFs,
  files: Record<string, string> | undefined,
  work: string,
  label?: string,
): void {
  const content = mkdtempSync(join(work, 'content-'));
  populate(content, files);
  if (fs === 'squashfs' || fs === 'erofs') {
    const out = join(work, `fs-${offset}.img`);
    if (fs === 'squashfs') run('mksquashfs', [content, out, '-quiet', '-noappend', '-all-root']);
    else run('mkfs.erofs', ['--quiet', out, content]);
    run('dd', [
      `if=${out}`,
      `of=${image}`,
      'bs=4096',
      `seek=${offset / 4096}`,
      'conv=notrunc,sparse',
      'status=none',
    ]);
    rmSync(out);
  } else {
    withLoop(['-o', String(offset), '--sizelimit', String(size), image], (dev) => {
      const l = label ? ['-L', label] : [];
      if (fs === 'ext4') run('mkfs.ext4', ['-q', '-F', ...l, '-d', content, dev]);
      else if (fs === 'btrfs') run('mkfs.btrfs', ['-q', '-f', ...l, '--rootdir', content, dev]);
      else if (fs === 'xfs') run('mkfs.xfs', ['-q', '-f', ...l, '-p', xfsProto(content, work), dev]);
      else if (fs === 'vfat') run('mkfs.vfat', [...(label ? ['-n', label] : []), dev]);
      else if (fs === 'swap') run('mkswap', [...l, dev]);
    });
  }
  rmSync(content, { recursive: true, force: true });
}

/**
 * A partitioned image: `table` gpt or dos, partitions laid out from 1 MiB,
 * 1 MiB apart. With sectorSize 4096 the table is written through a loop
 * device with 4096-byte logical blocks, as on a 4Kn disk.
 */
export function makeImage(
  path: string,
  table: 'gpt' | 'dos',
  parts: PartSpec[],
  work: string,
  sectorSize: 512 | 4096 = 512,
): MadePartition[] {
  const made: MadePartition[] = [];
  let at = MiB;
  parts.forEach((p, i) => {
    made.push({ ...p, number: i + 1, offset: at, size: p.sizeMiB * MiB });
    at += p.sizeMiB * MiB;
  });
  run('truncate', ['-s', String(at + MiB), path]);
  const lines = [`label: ${table}`];
  for (const m of made) {
    const f = [`start=${m.offset / sectorSize}`, `size=${m.size / sectorSize}`, `type=${m.type}`];
    if (m.name) f.push(`name="${m.name}"`);
    if (m.attrs) f.push(`attrs="${m.attrs}"`);
    if (m.uuid) f.push(`uuid=${m.uuid}`);
    if (m.bootable) f.push('bootable');
    lines.push(f.join(', '));
  }
  const script = `${lines.join('\n')}\n`;
  if (sectorSize === 512) run('sfdisk', ['-q', path], script);
  else
    withLoop(['-b', '4096', path], (dev) =>
      run('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', dev], script),
    );
  for (const m of made) if (m.fs) mkfsAt(path, m.offset, m.size, m.fs, m.files, work, m.name);
  return made;
}

/** sfdisk's own view of the table (for comparisons made without our code). */
export function sfdiskJson(path: string): {
  partitiontable: {
    id?: string;
    sectorsize?: number;
    partitions: Array<{
      node: string;
      start: number;
      size: number;
      type: string;
      uuid?: string;
      name?: string;
    }>;
  };
} {
  return JSON.parse(run('sfdisk', ['--json', path]));
}

export function kernelHas(fs: string): boolean {
  return readFileSync('/proc/filesystems', 'utf8')
    .split('\n')
    .some((l) => l.split('\t').pop() === fs);
}

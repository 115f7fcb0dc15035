import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unmountOrFail } from '../../../../tools/test/unmount.js';

/**
 * Test file systems: a btrfs or ext4 image in a temp file, attached to a
 * loop device and mounted at a directory of the test's choosing. dispose()
 * unmounts, detaches and deletes, also after a failure halfway.
 */

export const run = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

export function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface LoopFs {
  mountpoint: string;
  device: string;
  dispose(): void;
}

export function makeLoopFs(kind: 'btrfs' | 'ext4', mountpoint: string, sizeMiB = 512): LoopFs {
  const dir = mkdtempSync(join(tmpdir(), `sd-${kind}-`));
  const file = join(dir, 'fs.img');
  let device = '';
  let mounted = false;
  const dispose = () => {
    if (mounted) {
      mounted = false;
      unmountOrFail(mountpoint);
    }
    if (device) {
      try {
        run('losetup', ['-d', device]);
      } catch {}
      device = '';
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    run('truncate', ['-s', `${sizeMiB}M`, file]);
    if (kind === 'btrfs') run('mkfs.btrfs', ['-q', file]);
    else run('mkfs.ext4', ['-q', '-F', file]);
    device = run('losetup', ['--show', '-f', file]).trim();
    mkdirSync(mountpoint, { recursive: true });
    run('mount', [device, mountpoint]);
    mounted = true;
    return { mountpoint, device, dispose };
  } catch (e) {
    dispose();
    throw e;
  }
}

export const exists = existsSync;

import { createHash } from 'node:crypto';
import {
  chownSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../../../tools/test/busybox-tree.js';
import { defaultSettings, type Settings, startContainer } from '../src/index.js';

// The /etc files sd-nspawn writes into a writable tree (resolv.conf,
// localtime) are undone when a later start step fails: the tree is left
// byte-identical (same inodes, owners, modes, times, contents). The failing
// step here is the payload's --chdir, one of the last the child runs.

let tree: { dir: string; remove: () => void };
beforeAll(() => {
  tree = makeBusyboxTree('start3-etc-undo-');
});
afterAll(() => tree.remove());

/** Everything about /etc and its entries that a start could change. */
function snapshot(): Record<string, string> {
  const etc = join(tree.dir, 'etc');
  const out: Record<string, string> = {};
  const st = lstatSync(etc, { bigint: true });
  out['.'] = `${st.ino} ${st.mode} ${st.nlink}`;
  for (const name of readdirSync(etc).sort()) {
    const path = join(etc, name);
    const s = lstatSync(path, { bigint: true });
    const body = s.isSymbolicLink()
      ? `-> ${readlinkSync(path)}`
      : s.isFile()
        ? createHash('sha256').update(readFileSync(path)).digest('hex')
        : '';
    out[name] = `${s.ino} ${s.mode.toString(8)} ${s.uid}:${s.gid} ${s.nlink} ${s.size} ${s.mtimeNs} ${body}`;
  }
  return out;
}

function settings(over: Partial<Settings>): Settings {
  return {
    ...defaultSettings(),
    directory: tree.dir,
    console: 'pipe',
    quiet: true,
    register: false,
    machine: 'start3-etc-undo',
    parameters: ['/bin/true'],
    ...over,
  };
}

async function failingStart(over: Partial<Settings>): Promise<void> {
  await expect(startContainer(settings({ chdir: '/no/such/dir', ...over }))).rejects.toThrow(/chdir/);
}

function reset(entries: { resolv?: 'file' | 'link'; localtime?: 'file' | 'link' }): void {
  const etc = join(tree.dir, 'etc');
  for (const name of ['resolv.conf', 'localtime']) {
    try {
      unlinkSync(join(etc, name));
    } catch {}
  }
  if (entries.resolv === 'file') {
    writeFileSync(join(etc, 'resolv.conf'), 'nameserver 192.0.2.53\n', { mode: 0o600 });
    chownSync(join(etc, 'resolv.conf'), 1234, 4321);
  } else if (entries.resolv === 'link') symlinkSync('../run/resolv.conf', join(etc, 'resolv.conf'));
  if (entries.localtime === 'file') writeFileSync(join(etc, 'localtime'), 'TZif-not-really\n');
  else if (entries.localtime === 'link') symlinkSync('../usr/share/zoneinfo/Nowhere', join(etc, 'localtime'));
}

describe('sd-nspawn /etc files on a failed start', () => {
  it('writes them on a start that succeeds (the control: these settings do change the tree)', async () => {
    reset({ resolv: 'file', localtime: 'link' });
    const before = snapshot();
    const { exited } = await startContainer(settings({ resolvConf: 'replace-host', timezone: 'copy' }));
    await exited;
    const after = snapshot();
    expect(after['resolv.conf']).not.toBe(before['resolv.conf']);
    expect(after.localtime).not.toBe(before.localtime);
    expect(readFileSync(join(tree.dir, 'etc/resolv.conf'))).toEqual(readFileSync('/etc/resolv.conf'));
    expect(readFileSync(join(tree.dir, 'etc/localtime'))).toEqual(readFileSync('/etc/localtime'));
    // The replaced regular file kept its owner and mode; nothing set aside is left.
    expect(lstatSync(join(tree.dir, 'etc/resolv.conf'))).toMatchObject({
      uid: 1234,
      gid: 4321,
      mode: 0o100600,
    });
    expect(readdirSync(join(tree.dir, 'etc')).filter((n) => n.startsWith('.#'))).toEqual([]);
    // A second start finds them so already and changes nothing (same inodes, times).
    const again = await startContainer(settings({ resolvConf: 'replace-host', timezone: 'copy' }));
    await again.exited;
    expect(snapshot()).toEqual(after);
  });

  it('puts back a replaced file and a replaced symlink', async () => {
    reset({ resolv: 'file', localtime: 'link' });
    const before = snapshot();
    await failingStart({ resolvConf: 'replace-host', timezone: 'copy' });
    expect(snapshot()).toEqual(before);
  });

  it('removes the files it created', async () => {
    reset({});
    const before = snapshot();
    await failingStart({ resolvConf: 'copy-host', timezone: 'copy' });
    expect(snapshot()).toEqual(before);
  });

  it('puts back files it deleted', async () => {
    reset({ resolv: 'file', localtime: 'file' });
    const before = snapshot();
    await failingStart({ resolvConf: 'delete', timezone: 'delete' });
    expect(snapshot()).toEqual(before);
  });

  it('puts back a file it replaced by a zoneinfo symlink', async () => {
    reset({ resolv: 'link', localtime: 'file' });
    // The zone must exist in the tree for --timezone=symlink to link it.
    const zone = /zoneinfo\/(.+)$/.exec(readlinkSync('/etc/localtime'))?.[1];
    expect(zone).toBeDefined();
    const zoneDir = join(tree.dir, 'usr/share/zoneinfo', ...zone!.split('/').slice(0, -1));
    const { mkdirSync, rmSync } = await import('node:fs');
    mkdirSync(zoneDir, { recursive: true });
    writeFileSync(join(tree.dir, 'usr/share/zoneinfo', zone!), 'TZif\n');
    try {
      const before = snapshot();
      await failingStart({ resolvConf: 'copy-host', timezone: 'symlink' });
      expect(snapshot()).toEqual(before);
    } finally {
      rmSync(join(tree.dir, 'usr'), { recursive: true, force: true });
    }
  });
});

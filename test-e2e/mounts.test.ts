import { execFileSync } from 'node:child_process';
import {
  existsSync,
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
import { parseArgv, runContainer } from '@sd/nspawn';
import { close, pipe, readToEnd } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unmountOrFail } from '../tools/test/unmount.js';
import { makeBusyboxTree, sdNspawn } from './lib/trees.js';

// The filesystem half of sd-nspawn: custom mounts and .nspawn settings files,
// each checked from inside the container and from the host afterwards.

let tree: ReturnType<typeof makeBusyboxTree>;
let host: string;
beforeAll(() => {
  tree = makeBusyboxTree();
  host = mkdtempSync(join(tmpdir(), 'sd-e2e-host-'));
});
afterAll(() => {
  tree?.remove();
  rmSync(host, { recursive: true, force: true });
});

function sh(args: string[], script: string) {
  return sdNspawn(['-q', '-D', tree.dir, ...args, 'sh', '-c', script]);
}

describe('custom mounts', () => {
  it('--bind makes a host directory writable inside; --bind-ro read-only', () => {
    const dir = join(host, 'shared');
    mkdirSync(dir);
    writeFileSync(join(dir, 'from-host'), 'hello\n');
    const r = sh(
      [`--bind=${dir}:/mnt/rw`, `--bind-ro=${dir}:/mnt/ro`],
      'cat /mnt/rw/from-host; echo made > /mnt/rw/from-container; (echo x > /mnt/ro/y) 2>&1; grep -c " /mnt/r[ow] " /proc/self/mountinfo',
    );
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('hello');
    expect(lines[1]).toMatch(/Read-only file system/);
    expect(lines[2]).toBe('2');
    expect(readFileSync(join(dir, 'from-container'), 'utf8')).toBe('made\n');
    expect(existsSync(join(dir, 'y'))).toBe(false);
  });

  it('--bind under the user namespace: idmapped (host-root files are the container root’s) unless noidmap', () => {
    const dir = join(host, 'idmapped');
    mkdirSync(dir);
    writeFileSync(join(dir, 'owned-by-root'), 'x');
    const r = sh(
      [
        '-U',
        `--bind=${dir}:/mnt/plain:noidmap`,
        `--bind=${dir}:/mnt/mapped:idmap`,
        `--bind=${dir}:/mnt/default`,
      ],
      'stat -c %u /mnt/plain/owned-by-root /mnt/mapped/owned-by-root /mnt/default/owned-by-root; touch /mnt/mapped/made-inside',
    );
    expect(r.stdout.trim().split('\n'), r.stderr).toEqual(['65534', '0', '0']);
    expect(statSync(join(dir, 'made-inside')).uid).toBe(0);
  });

  it('--bind of a single file; norbind leaves a submount behind, rbind (the default) takes it', () => {
    const file = join(host, 'one-file');
    writeFileSync(file, 'single\n');
    expect(sh([`--bind-ro=${file}:/etc/single`], 'cat /etc/single').stdout).toBe('single\n');
    // As systemd's testcase_norbind: a directory with a tmpfs mounted inside it.
    const dir = join(host, 'with-submount');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'sub/under'), 'hidden by the tmpfs\n');
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', join(dir, 'sub')]);
    try {
      writeFileSync(join(dir, 'sub/on-tmpfs'), 'on the tmpfs\n');
      const look = 'cat /mnt/d/sub/* 2>&1; grep -c " /mnt/d/sub " /proc/self/mountinfo';
      const norbind = sh([`--bind=${dir}:/mnt/d:norbind`], look);
      expect(norbind.stdout, norbind.stderr).toBe('hidden by the tmpfs\n0\n');
      const rbind = sh([`--bind=${dir}:/mnt/d`], look);
      expect(rbind.stdout, rbind.stderr).toBe('on the tmpfs\n1\n');
    } finally {
      unmountOrFail(join(dir, 'sub'));
    }
  });

  it('--tmpfs mounts an empty tmpfs with the given options; nothing reaches the tree', () => {
    const r = sh(
      ['--tmpfs=/var/scratch:mode=0700'],
      'ls -ld /var/scratch | cut -c1-10; echo x > /var/scratch/f; grep " /var/scratch " /proc/self/mountinfo | grep -c tmpfs',
    );
    expect(r.stdout.trim().split('\n')).toEqual(['drwx------', '1']);
    expect(existsSync(join(tree.dir, 'var/scratch/f'))).toBe(false);
  });

  it('--overlay keeps changes in the upper directory; --overlay-ro is read-only', () => {
    const lower = join(host, 'lower');
    const lower2 = join(host, 'lower2');
    const upper = join(host, 'upper');
    for (const d of [lower, lower2, upper]) mkdirSync(d);
    writeFileSync(join(lower, 'base'), 'base\n');
    const r = sh(
      [`--overlay=${lower}:${upper}:/srv/o`, `--overlay-ro=${lower}:${lower2}:/srv/ro`],
      'cat /srv/o/base; echo changed > /srv/o/base; echo new > /srv/o/new; touch /srv/ro/x 2>&1 | grep -c Read-only',
    );
    expect(r.stdout.trim().split('\n')).toEqual(['base', '1']);
    expect(readFileSync(join(lower, 'base'), 'utf8')).toBe('base\n');
    expect(readFileSync(join(upper, 'base'), 'utf8')).toBe('changed\n');
    expect(readFileSync(join(upper, 'new'), 'utf8')).toBe('new\n');
    // The overlay's work directory next to the upper one is gone after exit.
    expect(readdirSync(host).filter((f) => f.startsWith('.#'))).toEqual([]);
  });

  it('--inaccessible hides a file and a directory', () => {
    mkdirSync(join(tree.dir, 'secret'), { recursive: true });
    writeFileSync(join(tree.dir, 'secret/key'), 'k\n');
    const r = sh(
      ['--inaccessible=/secret', '--inaccessible=/etc/os-release'],
      'ls /secret 2>&1 | wc -l; cat /etc/os-release | wc -c; (echo x > /etc/os-release) 2>&1 | grep -c Read-only',
    );
    expect(r.stdout.trim().split('\n')).toEqual(['0', '0', '1']);
    expect(readFileSync(join(tree.dir, 'etc/os-release'), 'utf8')).toMatch(/BusyBox/);
  });

  it('--read-only makes the tree read-only', () => {
    const r = sh(['--read-only'], 'touch /root/x 2>&1');
    expect(r.stdout).toMatch(/Read-only file system/);
  });

  it('refuses bad mount specifications with a clear error', () => {
    let r = sdNspawn(['-D', tree.dir, '--bind=relative/path', 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not an absolute path/);
    r = sdNspawn(['-D', tree.dir, '--bind=/no/such/source:/x', 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Bind mount source \/no\/such\/source doesn't exist/);
    r = sdNspawn(['-D', tree.dir, '--overlay=/a:/b', 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/LOWER:UPPER:DESTINATION/);
    r = sdNspawn(['-D', tree.dir, '--inaccessible=/not/there', 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/doesn't exist in the container/);
  });
});

describe('.nspawn settings files', () => {
  async function run(args: string[], trustedDir: string) {
    const [r, w] = pipe();
    const { settings, explicit } = parseArgv(args);
    const notices: string[] = [];
    const status = await runContainer(settings, {
      explicit,
      stdio: [0, w, w],
      settingsPaths: { trusted: [trustedDir] },
      logger: { warn: (m) => notices.push(m) },
    }).finally(() => close(w));
    return { status, out: (await readToEnd(r)).toString(), notices };
  }

  it('ignore privileged settings next to the image and honour them from a trusted directory', async () => {
    const machines = mkdtempSync(join(tmpdir(), 'sd-e2e-machines-'));
    const trusted = mkdtempSync(join(tmpdir(), 'sd-e2e-etc-nspawn-'));
    try {
      const image = join(machines, 'web');
      rmSync(image, { recursive: true, force: true });
      const { cpSync } = await import('node:fs');
      cpSync(tree.dir, image, { recursive: true, verbatimSymlinks: true });
      const file =
        '[Exec]\nEnvironment=FROM_FILE=1\nCapability=CAP_SYS_MODULE\n[Files]\nBindReadOnly=/etc:/host-etc\n';
      writeFileSync(join(machines, 'web.nspawn'), file);
      const script = [
        'sh',
        '-c',
        'echo env=$FROM_FILE; ls /host-etc >/dev/null 2>&1 && echo host-etc; grep CapBnd /proc/self/status',
      ];
      const untrusted = await run(['-D', image, ...script], trusted);
      expect(untrusted.out).toMatch(/^env=1$/m);
      expect(untrusted.out).not.toMatch(/host-etc/);
      const bounding = (out: string) => BigInt(`0x${/CapBnd:\s+([0-9a-f]+)/.exec(out)?.[1]}`);
      const SYS_MODULE = 1n << 16n;
      expect(bounding(untrusted.out) & SYS_MODULE).toBe(0n);
      expect(untrusted.notices).toContain(
        `Ignoring Capability= setting, file ${machines}/web.nspawn is not trusted.`,
      );
      expect(untrusted.notices).toContain(
        `Ignoring BindReadOnly= setting, file ${machines}/web.nspawn is not trusted.`,
      );

      writeFileSync(join(trusted, 'web.nspawn'), file);
      const honoured = await run(['-D', image, ...script], trusted);
      expect(honoured.out).toMatch(/^host-etc$/m);
      expect(bounding(honoured.out) & SYS_MODULE).toBe(SYS_MODULE);
      expect(honoured.notices.filter((n) => n.includes('not trusted'))).toEqual([]);
      expect(honoured.status.code).toBe(0);
    } finally {
      rmSync(machines, { recursive: true, force: true });
      rmSync(trusted, { recursive: true, force: true });
    }
  });

  it('a bad settings file stops the start and names file, line and key', async () => {
    const trusted = mkdtempSync(join(tmpdir(), 'sd-e2e-etc-nspawn-'));
    try {
      writeFileSync(join(trusted, 'badbox.nspawn'), '[Exec]\nBoot=maybe\n');
      await expect(run(['-D', tree.dir, '-M', 'badbox', 'true'], trusted)).rejects.toThrow(
        `${trusted}/badbox.nspawn:2: Boot=: invalid value 'maybe'`,
      );
    } finally {
      rmSync(trusted, { recursive: true, force: true });
    }
  });
});

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImagePool, imagePoolPaths } from '@sd/machined';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import { findBusybox, makeBusyboxTree } from '../../../tools/test/busybox-tree.js';
import { type ImportdProc, startImportd, TS } from './importd-proc.js';

/**
 * The must-show: an image imported by Debian's own `machinectl
 * import-tar` through our sd-importd, and one pulled by our machinectl from
 * a loopback HTTP server (checksum verified), both run with sd-nspawn.
 * sd-nspawn gets explicit flags (no user namespace, no registration, pipe
 * console) so the test does not depend on its defaults.
 */

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const MACHINECTL = join(repo, 'packages/machined/src/machinectl.ts');
const NSPAWN = join(repo, 'packages/nspawn/src/cli.ts');
const DEBIAN_BUILD = join(repo, 'tools/debian-tree/build.sh');

let root: string;
let pool: ImagePool;
let bus: PrivateBus;
let daemon: ImportdProc | undefined;
const daemonLog = () => daemon?.log() ?? '';
let tree: { dir: string; remove: () => void };
let server: Server | undefined;

/** Debian's machinectl refuses to run unless /run/systemd/system exists: a private mount namespace gives it one. */
function debianMachinectl(...args: string[]) {
  const script =
    'mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec /usr/bin/machinectl --no-pager "$@"';
  return spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...args], {
    env: bus.env,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

/** Runs `/bin/sh -c 'echo ok'` in the image with sd-nspawn. */
function runInImage(name: string) {
  return spawnSync(
    process.execPath,
    [
      ...TS,
      NSPAWN,
      '-q',
      '-D',
      join(pool.poolPath, name),
      '-M',
      name,
      '--private-users=no',
      '--register=no',
      '--console=pipe',
      '--kill-signal=SIGKILL',
      '/bin/sh',
      '-c',
      'echo ok from $(cat /etc/hostname 2>/dev/null || hostname)',
    ],
    { env: bus.env, encoding: 'utf8', timeout: 120_000 },
  );
}

const busyboxOk = findBusybox() !== undefined;
const debianOk = existsSync('/usr/bin/machinectl');

beforeAll(async () => {
  if (!busyboxOk) return;
  root = mkdtempSync(`${tmpdir()}/importd-boot-`);
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
  tree = makeBusyboxTree('importd-boot-tree-');
  bus = await startPrivateBus();
  daemon = await startImportd(root, bus.env);
}, 60_000);

afterAll(async () => {
  server?.close();
  await daemon?.stop();
  await bus?.stop();
  tree?.remove();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe.skipIf(!busyboxOk)('imported and pulled images run with sd-nspawn', () => {
  it.skipIf(!debianOk)("an image imported by Debian's machinectl import-tar through sd-importd", () => {
    const file = `${root}/importd-boot-deb.tar.zst`;
    const t = spawnSync('sh', [
      '-c',
      `tar --numeric-owner -C '${tree.dir}' -cf - . | zstd -q -c > '${file}'`,
    ]);
    expect(t.status, String(t.stderr)).toBe(0);
    const r = debianMachinectl('import-tar', file, 'importd-boot-deb');
    expect(r.status, `${r.stderr}\n${daemonLog()}`).toBe(0);
    const run = runInImage('importd-boot-deb');
    expect(run.stdout, run.stderr).toContain('ok from');
    expect(run.status, run.stderr).toBe(0);
  });

  it.skipIf(!existsSync(DEBIAN_BUILD))(
    'a Debian tree imported by our machinectl import-tar boots with sd-nspawn --boot to poweroff',
    () => {
      // The Debian test tree (systemd, util-linux), built once and cached; never rebuilt here.
      const src = execFileSync(DEBIAN_BUILD, {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }).trim();
      const file = `${root}/import3-debian.tar`;
      const t = spawnSync('tar', [
        '--xattrs',
        '--xattrs-include=*',
        '--numeric-owner',
        '-C',
        src,
        '-cf',
        file,
        '.',
      ]);
      expect(t.status, String(t.stderr)).toBe(0);
      const imp = spawnSync(process.execPath, [...TS, MACHINECTL, 'import-tar', file, 'import3-debian'], {
        env: bus.env,
        encoding: 'utf8',
        timeout: 300_000,
      });
      expect(imp.status, `${imp.stderr}\n${daemonLog()}`).toBe(0);
      rmSync(file);
      // Evidence that systemd ran the boot: a unit pulled in from the kernel command line writes PID 1's name.
      const img = join(pool.poolPath, 'import3-debian');
      writeFileSync(
        `${img}/etc/systemd/system/import3-mark.service`,
        '[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshot\nExecStart=/bin/sh -c "cat /proc/1/comm > /import3-booted"\n',
      );
      const t0 = performance.now();
      const boot = spawnSync(
        process.execPath,
        [
          ...TS,
          NSPAWN,
          '-q',
          '--boot',
          '-D',
          img,
          '-M',
          'import3-debian',
          '--private-users=no',
          '--register=no',
          '--console=pipe',
          'systemd.unit=poweroff.target',
          'systemd.wants=import3-mark.service',
        ],
        { env: bus.env, encoding: 'utf8', timeout: 240_000 },
      );
      console.log(`imported Debian tree: boot to poweroff in ${(performance.now() - t0).toFixed(0)} ms`);
      expect(boot.status, `${boot.stdout}\n${boot.stderr}`).toBe(0);
      expect(readFileSync(`${img}/import3-booted`, 'utf8').trim()).toBe('systemd');
    },
    300_000,
  );

  it('an image pulled by our machinectl pull-tar --verify=checksum from loopback HTTP', async () => {
    const file = `${root}/importd-boot-web.tar.xz`;
    const t = spawnSync('sh', ['-c', `tar --numeric-owner -C '${tree.dir}' -cf - . | xz -T1 -c > '${file}'`]);
    expect(t.status, String(t.stderr)).toBe(0);
    const data = readFileSync(file);
    const sums = `${createHash('sha256').update(data).digest('hex')} *importd-boot-web.tar.xz\n`;
    server = createServer((req, res) => {
      if (req.url === '/importd-boot-web.tar.xz') res.end(data);
      else if (req.url === '/SHA256SUMS') res.end(sums);
      else {
        res.writeHead(404);
        res.end();
      }
    });
    const srv = server;
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/importd-boot-web.tar.xz`;
    const pull = await new Promise<{ status: number | null; out: string }>((resolve) => {
      // Asynchronous: the HTTP server runs in this process.
      const p = spawn(process.execPath, [...TS, MACHINECTL, 'pull-tar', '--verify=checksum', url], {
        env: bus.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout?.on('data', (d) => (out += d));
      p.stderr?.on('data', (d) => (out += d));
      p.on('exit', (status) => resolve({ status, out }));
    });
    expect(pull.status, `${pull.out}\n${daemonLog()}`).toBe(0);
    expect(readdirSync(pool.poolPath)).toContain('importd-boot-web');
    const run = runInImage('importd-boot-web');
    expect(run.stdout, run.stderr).toContain('ok from');
    expect(run.status, run.stderr).toBe(0);
  });
});

import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The static busybox of the host (busybox-static), if installed. */
export function findBusybox(): string | undefined {
  return ['/bin/busybox', '/usr/bin/busybox'].find(existsSync);
}

/**
 * A minimal root tree for test containers: a static busybox with its
 * applets in /bin, passwd, group and an os-release. Shared by the
 * end-to-end tests and the daemon's integration tests.
 */
export function makeBusyboxTree(
  prefix = 'sd-e2e-busybox-',
  osRelease = 'ID=busybox\nNAME="BusyBox test tree"\n',
): { dir: string; remove: () => void } {
  const busybox = findBusybox();
  if (!busybox)
    throw new Error('busybox is not installed: apt-get install busybox-static (tools/setup does)');
  const dir = mkdtempSync(join(tmpdir(), prefix));
  for (const d of ['bin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev', 'run', 'var']) mkdirSync(join(dir, d));
  copyFileSync(busybox, join(dir, 'bin/busybox'));
  const list = spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const applet of list) if (applet !== 'busybox') symlinkSync('busybox', join(dir, 'bin', applet));
  writeFileSync(
    join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n');
  writeFileSync(join(dir, 'etc/os-release'), osRelease);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

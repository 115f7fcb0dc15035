import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { debianTree, makeBusyboxTree, NSPAWN_CLI } from './lib/trees.js';

// sd-nspawn's console off a terminal, with no --console: read-only, as
// systemd-nspawn's: the container's console (a pty) is copied to our stdout,
// so `sd-nspawn -b > boot.log` has the boot in it.
let tree: ReturnType<typeof makeBusyboxTree>;
beforeAll(() => {
  tree = makeBusyboxTree('sd-e2e-console-default-');
});
afterAll(() => tree?.remove());

const run = (args: string[], timeout = 60_000) =>
  spawnSync(process.execPath, [NSPAWN_CLI, ...args], {
    encoding: 'utf8',
    timeout,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

describe('the console off a terminal', () => {
  it('is read-only by default: the payload runs on the console pty and its output reaches our stdout', () => {
    const r = run(['-q', '-D', tree.dir, 'sh', '-c', 'tty; echo out; echo err >&2']);
    // A pty turns \n into \r\n, as systemd-nspawn's output shows it too.
    expect(r.stdout).toBe('/dev/console\r\nout\r\nerr\r\n');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('--pipe (and --console=autopipe) hands the payload our own stdio', () => {
    for (const mode of ['--pipe', '--console=autopipe']) {
      const r = run(['-q', mode, '-D', tree.dir, 'sh', '-c', 'tty || true; echo out; echo err >&2']);
      expect(r.stdout).toBe('not a tty\nout\n');
      expect(r.stderr).toBe('err\n');
    }
  });

  it('shows a booted guest’s console output', () => {
    const debian = debianTree();
    const r = run(
      [
        '-q',
        '-D',
        debian,
        '--volatile=overlay',
        '-M',
        'console-default-boot',
        '-b',
        'systemd.unit=poweroff.target',
      ],
      120_000,
    );
    expect(r.stdout).toMatch(/Welcome to .*Debian/);
    expect(r.stdout).toMatch(/Powering off|Reached target .*Power-Off/);
    expect(r.status).toBe(0);
  });
});

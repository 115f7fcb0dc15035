import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree, NSPAWN_CLI } from './lib/trees.js';

// The interactive console, on a real terminal: util-linux's `script` gives
// sd-nspawn a pty as its stdin/stdout, as a user's terminal would.

let tree: ReturnType<typeof makeBusyboxTree>;
beforeAll(() => {
  tree = makeBusyboxTree();
});
afterAll(() => tree?.remove());

function onTerminal(args: string[], input: (write: (s: string) => void) => void, timeout = 30_000) {
  const cmd = [process.execPath, NSPAWN_CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  return new Promise<{ code: number | null; out: string; ms: number }>((resolve, reject) => {
    const started = Date.now();
    const child = spawn('script', ['-qefc', `stty cols 100 rows 30; exec ${cmd}`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out; output so far: ${out}`));
    }, timeout);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - started });
    });
    input((s) => child.stdin.write(s));
  });
}

describe('interactive console', () => {
  it('is the container’s controlling terminal, with our window size', async () => {
    // coreutils' stty from the host's /usr (busybox's stty size does not read the size).
    const r = await onTerminal(
      ['-D', '/', '--volatile=yes', '/bin/sh', '-c', 'tty; stty size; test -t 0 && echo stdin-is-tty'],
      () => {},
    );
    expect(r.out).toContain('Press ^] three times within 1s to kill container.');
    expect(r.out).toMatch(/\/dev\/console/);
    expect(r.out).toMatch(/30 100/);
    expect(r.out).toMatch(/stdin-is-tty/);
    expect(r.code).toBe(0);
  });

  it('passes typed input through and kills the container on ^] pressed three times', async () => {
    const r = await onTerminal(
      ['-D', tree.dir, 'sh', '-c', 'read line; echo got:$line; sleep 60'],
      (write) => {
        setTimeout(() => write('hello\r'), 1500);
        setTimeout(() => write('\x1d\x1d\x1d'), 2500);
      },
    );
    expect(r.out).toMatch(/got:hello/);
    expect(r.code).not.toBe(0);
    expect(r.ms).toBeLessThan(20_000);
  });

  it.each([
    ['interactive', []],
    ['read-only', ['--console=read-only']],
    ['passive', ['--console=passive']],
  ])('works under -U in %s mode: the console belongs to the container’s root', async (_mode, extra) => {
    // The console pty comes from the host's devpts; under -U the container's root is another uid.
    const r = await onTerminal(
      [
        '-D',
        tree.dir,
        '-M',
        'console-userns',
        '-U',
        ...extra,
        'sh',
        '-c',
        'echo ran-as-$(id -u); ls -ln /dev/console',
      ],
      () => {},
    );
    expect(r.out).not.toMatch(/EACCES/);
    if (_mode !== 'passive') expect(r.out).toMatch(/ran-as-0/);
    expect(r.code).toBe(0);
  });
});

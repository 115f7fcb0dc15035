import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultSettings, runContainer, type Settings, startContainer } from '../src/index.js';

// --as-pid2 end to end (as root): a busybox tree, the stub init as PID 1 and
// the payload as PID 2. The payload writes what it sees into the tree.

let tree: string;
beforeAll(() => {
  tree = mkdtempSync(join(tmpdir(), 'sd-as-pid2-'));
  for (const d of ['bin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev', 'run']) mkdirSync(join(tree, d));
  copyFileSync('/bin/busybox', join(tree, 'bin/busybox'));
  for (const applet of ['sh', 'sleep', 'cat', 'echo', 'ps'])
    symlinkSync('busybox', join(tree, 'bin', applet));
  writeFileSync(join(tree, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(tree, 'etc/group'), 'root:x:0:\n');
});
afterAll(() => rmSync(tree, { recursive: true, force: true }));

function settings(...parameters: string[]): Settings {
  return { ...defaultSettings(), directory: tree, asPid2: true, console: 'pipe', quiet: true, parameters };
}

function output(): string {
  try {
    return readFileSync(join(tree, 'root/out'), 'utf8');
  } catch {
    return '';
  }
}

describe('sd-nspawn --as-pid2', () => {
  it('runs the payload as PID 2 under the stub init and passes its exit status on', async () => {
    const status = await runContainer(
      settings('sh', '-c', 'echo $$ > /root/out; cat /proc/1/cmdline >> /root/out; exit 7'),
    );
    expect(status).toMatchObject({ code: 7, signal: null });
    const [pid, cmdline] = output().split('\n');
    expect(pid).toBe('2');
    expect(cmdline?.split('\0').slice(0, 3)).toEqual(['sd-stub-init', '/bin/sh', 'sh']);
  });

  it('forwards the stop signal to the payload', async () => {
    rmSync(join(tree, 'root/out'), { force: true });
    const { container, exited } = await startContainer({
      ...settings('sh', '-c', 'trap "exit 3" TERM; echo ready > /root/out; while :; do sleep 0.05; done'),
      killSignal: 15,
    });
    for (let i = 0; i < 200 && !output().startsWith('ready'); i++)
      await new Promise((r) => setTimeout(r, 10));
    container.stop();
    expect(await exited).toMatchObject({ code: 3, signal: null });
  });

  it('reports a command missing from the tree with status 127', async () => {
    expect((await runContainer(settings('no-such-command'))).code).toBe(127);
  });
});

import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SYSTEMD_V1_CONTROLLERS } from '@sd/basic';
import { detectCgroups } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../../../tools/test/busybox-tree.js';
import { defaultSettings, type Settings, startContainer } from '../src/index.js';

// The payload joins its scope at its clone (CLONE_INTO_CGROUP, and "0" written to
// each v1 tasks file by the child itself), not moved by pid afterwards: seen from
// the host, it is in the scope in the unified hierarchy and every v1 one systemd
// manages (in the others, cpuset and freezer, where it was, as under systemd), and
// the fds it joined through are gone from it.

let tree: string;
let removeTree: () => void;
beforeAll(() => {
  ({ dir: tree, remove: removeTree } = makeBusyboxTree('sd-cgroup-join-'));
});
afterAll(() => removeTree());

const settings = (machine: string, ...extra: Partial<Settings>[]): Settings =>
  Object.assign(
    {
      ...defaultSettings(),
      directory: tree,
      machine,
      console: 'pipe' as const,
      quiet: true,
      // Written whole, then renamed: the test reads it as soon as it is there.
      parameters: ['sh', '-c', 'ls /proc/self/fd > /root/fds.tmp; mv /root/fds.tmp /root/fds; exec sleep 30'],
    },
    ...extra,
  );

describe('the payload joins its cgroup scope itself', () => {
  it.each([
    ['cgjoin-userns', {}],
    ['cgjoin-nouserns', { privateUsers: { mode: 'no' } } as Partial<Settings>],
  ])('%s: in machine.slice/machine-NAME.scope everywhere, no join fd left', async (machine, extra) => {
    rmSync(join(tree, 'root/fds'), { force: true });
    const { container, exited } = await startContainer(settings(machine, extra));
    try {
      const pid = container.pid ?? 0;
      for (let i = 0; i < 200 && !readSafe(join(tree, 'root/fds')); i++)
        await new Promise((r) => setTimeout(r, 10));
      const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
      const scope = `/machine.slice/machine-${machine.replace(/-/g, '\\x2d')}.scope`;
      const layout = detectCgroups();
      expect(lines.length).toBe(layout.hierarchies.length + (layout.unifiedRoot ? 1 : 0));
      let unmanaged = 0;
      for (const line of lines) {
        const [, controllers, path] = line.split(':') as [string, string, string];
        const managed =
          controllers === '' || controllers.split(',').some((c) => SYSTEMD_V1_CONTROLLERS.has(c));
        if (!managed) unmanaged++;
        const want = controllers === 'devices' ? `${scope}/payload` : scope;
        expect(path.endsWith(want), line).toBe(managed);
      }
      // This host has cpuset and freezer mounted: the test sees both kinds.
      if (layout.hierarchies.some((h) => h.controllers.includes('cpuset')))
        expect(unmanaged).toBeGreaterThan(0);
      // stdin, stdout, stderr and ls's own directory fd: nothing of the setup.
      expect(readSafe(join(tree, 'root/fds')).trim().split('\n').map(Number)).toEqual([0, 1, 2, 3]);
    } finally {
      container.kill();
      await exited;
    }
  });
});

function readSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../../../tools/test/busybox-tree.js';
import { defaultSettings, type Settings, startContainer } from '../src/index.js';

// Root in a container without a user namespace (it has CAP_MKNOD) makes
// /dev/mem (1:1) and a loop device node (7:0) on the container's /dev,
// which is not nodev, and reads them: the scope's device policy (the v1
// devices controller on this hybrid host, a BPF program on a unified one)
// refuses. /dev/null, on the allow list, still opens. (The escape tests'
// mknod attacks run on a nodev /tmp: this one reaches the policy itself.)

let tree: string;
let removeTree: () => void;
beforeAll(() => {
  ({ dir: tree, remove: removeTree } = makeBusyboxTree('sd-device-policy-'));
});
afterAll(() => removeTree());

// The policy refuses the mknod itself ('m' is not allowed for them); should a node exist anyway,
// its open: both count as refused.
const SCRIPT = [
  'for dev in "xmem c 1 1" "xloop b 7 0"; do',
  '  set -- $dev',
  '  if mknod /dev/$1 $2 $3 $4 2>/dev/null && dd if=/dev/$1 of=/dev/null bs=1 count=1 2>/dev/null;',
  '  then echo "$1 opened"; else echo "$1 refused"; fi',
  'done',
  'dd if=/dev/null of=/dev/null 2>/dev/null && echo "null opened"',
].join('\n');

describe('the device policy holds against root in a container', () => {
  it('refuses /dev/mem and a loop device made inside; /dev/null opens', async () => {
    const settings: Settings = Object.assign(defaultSettings(), {
      directory: tree,
      machine: 'devpolicy-nouserns',
      console: 'pipe' as const,
      quiet: true,
      privateUsers: { mode: 'no' },
      parameters: ['sh', '-c', `{ ${SCRIPT}; } > /root/out`],
    } as Partial<Settings>);
    const { exited } = await startContainer(settings);
    await exited;
    const out = readFileSync(join(tree, 'root/out'), 'utf8').trim().split('\n');
    expect(out).toEqual(['xmem refused', 'xloop refused', 'null opened']);
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { addressOf } from '../src/ffi/libc.js';
import {
  type ChildProcess,
  CLONE,
  closeQuietly,
  createUserNamespaceFd,
  O,
  open,
  SpawnProgram,
  spawn,
} from '../src/index.js';

/**
 * spawn's joinsOwnSetup: a program that joins namespaces may share our
 * memory when the caller asks, except where the kernel refuses it (a user
 * namespace). Whether the child shares our memory is seen from outside: a
 * mapping we make after the clone, while it waits, is in its
 * /proc/PID/maps only if its memory is ours.
 */

async function seesOurNewMapping(program: SpawnProgram): Promise<boolean> {
  let shared: boolean | undefined;
  const child = await spawn(program, {
    joinsOwnSetup: true,
    beforeRun: (c: ChildProcess) => {
      const fresh = Buffer.allocUnsafeSlow(16 << 20); // malloc'd by mmap: a mapping of its own
      fresh[0] = 1;
      const at = addressOf(fresh);
      shared = readFileSync(`/proc/${c.pid}/maps`, 'utf8')
        .split('\n')
        .some((l) => {
          const [lo, hi] = (l.split(' ')[0] ?? '').split('-').map((h) => BigInt(`0x${h || '0'}`));
          return lo !== undefined && hi !== undefined && lo <= at && at < hi;
        });
    },
  });
  expect((await child.exited).code).toBe(0);
  return shared!;
}

describe('spawn joinsOwnSetup', () => {
  it('shares our memory with a child that joins a mount namespace', async () => {
    const mnt = open('/proc/self/ns/mnt', O.RDONLY | O.CLOEXEC);
    try {
      const p = new SpawnProgram().waitForParent().setns(mnt, CLONE.NEWNS).exit(0);
      expect(p.canShareMemory).toBe(false);
      expect(await seesOurNewMapping(p)).toBe(true);
    } finally {
      closeQuietly(mnt);
    }
  });

  it('gives a child that joins a user namespace a memory of its own (the kernel refuses a shared one)', async () => {
    const user = await createUserNamespaceFd([{ inside: 0, outside: 1_900_000, count: 1 }]);
    try {
      const p = new SpawnProgram().waitForParent().setns(user, CLONE.NEWUSER).exit(0);
      expect(await seesOurNewMapping(p)).toBe(false);
    } finally {
      closeQuietly(user);
    }
  });
});

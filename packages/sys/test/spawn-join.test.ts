import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { addressOf, lazyFunc } from '../src/ffi/libc.js';
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
 * memory when the caller asks, except one that makes or joins a user
 * namespace or changes its ids (SpawnProgram.canShareMemory). Whether the
 * child shares our memory is seen from outside: a mapping we make after the
 * clone, while it waits, is in its /proc/PID/maps only if its memory is
 * ours.
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

  it('gives a child that joins a user namespace a memory of its own', async () => {
    const user = await createUserNamespaceFd([{ inside: 0, outside: 1_900_000, count: 1 }]);
    try {
      const p = new SpawnProgram().waitForParent().setns(user, CLONE.NEWUSER).exit(0);
      expect(await seesOurNewMapping(p)).toBe(false);
    } finally {
      closeQuietly(user);
    }
  });
});

const PR_GET_DUMPABLE = 3;
const PR_SET_DUMPABLE = 4;
const prctl = lazyFunc(
  'int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)',
);

describe('a child that changes its ids', () => {
  // In our memory, its setfsuid would mark that memory (Node's) not dumpable:
  // /proc/PID of a daemon root's alone, no core dumps (commit_creds).
  it.each([
    ['by default', false],
    ['with joinsOwnSetup', true],
  ])('runs in a memory of its own and leaves this process dumpable (%s)', async (_, joinsOwnSetup) => {
    const mnt = open('/proc/self/ns/mnt', O.RDONLY | O.CLOEXEC);
    expect(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)).toBe(1);
    try {
      const p = new SpawnProgram().waitForParent();
      if (joinsOwnSetup) p.setns(mnt, CLONE.NEWNS);
      p.setfsid(1_900_000, 1_900_000).exit(0);
      const child = await spawn(p, { joinsOwnSetup });
      expect((await child.exited).code).toBe(0);
      expect(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)).toBe(1);
    } finally {
      prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
      closeQuietly(mnt);
    }
  });
});

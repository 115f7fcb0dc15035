import { readFileSync, readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLONE, SpawnProgram, spawn, unshare, withNetworkNamespace } from '../src/index.js';

describe('namespaces from the Node process', () => {
  it('refuses user and mount namespaces with an explanation', () => {
    expect(() => unshare(CLONE.NEWUSER)).toThrow(/spawn program/);
    expect(() => unshare(CLONE.NEWNS)).toThrow(/multi-threaded/);
  });

  it('enters a container’s network namespace on the main thread only, and comes back', async () => {
    const p = new SpawnProgram();
    p.resetSignals().execve('/bin/sleep', ['sleep', '30'], []);
    const child = await spawn(p, { cloneFlags: CLONE.NEWNET });
    try {
      const own = readlinkSync('/proc/thread-self/ns/net');
      const theirs = readlinkSync(`/proc/${child.pid}/ns/net`);
      expect(theirs).not.toBe(own);
      const seen = withNetworkNamespace(child.pidfd, () => ({
        ns: readlinkSync('/proc/thread-self/ns/net'),
        links: readFileSync('/proc/thread-self/net/dev', 'utf8')
          .split('\n')
          .slice(2)
          .filter(Boolean)
          .map((l) => l.split(':')[0]!.trim()),
      }));
      expect(seen.ns).toBe(theirs);
      expect(seen.links).toEqual(['lo']);
      expect(readlinkSync('/proc/thread-self/ns/net')).toBe(own);
      expect(() =>
        withNetworkNamespace(child.pidfd, () => {
          throw new Error('inside');
        }),
      ).toThrow('inside');
      expect(readlinkSync('/proc/thread-self/ns/net')).toBe(own);
    } finally {
      child.kill(9);
      await child.exited;
    }
  });
});

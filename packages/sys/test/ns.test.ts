import { fstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CLONE,
  close,
  closeQuietly,
  createContainerNamespaces,
  ioctlIntRaw,
  pipe,
  readToEnd,
  SpawnProgram,
  spawn,
  unshare,
  withNetworkNamespace,
} from '../src/index.js';

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

describe('spawn pidNamespaceOf', () => {
  it('starts the child in another process’s PID namespace and switches the main thread back', async () => {
    const p = new SpawnProgram();
    p.resetSignals().execve('/bin/sleep', ['sleep', '30'], []);
    const init = await spawn(p, { cloneFlags: CLONE.NEWPID });
    try {
      const before = readlinkSync('/proc/thread-self/ns/pid_for_children');
      const [r, w] = pipe();
      const q = new SpawnProgram();
      q.stdio([0, w, 2]).resetSignals();
      q.execve('/bin/sh', ['sh', '-c', 'echo $$ $(readlink /proc/self/ns/pid)'], []);
      const child = await spawn(q, { pidNamespaceOf: init.pidfd }).finally(() => close(w));
      const [out] = await Promise.all([readToEnd(r), child.exited]);
      // PID 2 in the namespace whose PID 1 is `init`.
      expect(out.toString().trim()).toBe(`2 ${readlinkSync(`/proc/${init.pid}/ns/pid`)}`);
      expect(readlinkSync('/proc/thread-self/ns/pid_for_children')).toBe(before);
      await expect(spawn(q, { pidNamespaceOf: init.pidfd, cloneFlags: CLONE.NEWPID })).rejects.toThrow(
        /exclude each other/,
      );
    } finally {
      init.kill(9);
      await init.exited;
    }
  });
});

describe('createContainerNamespaces', () => {
  it('makes UTS, IPC and network namespaces owned by a new, mapped user namespace', async () => {
    const map = [{ inside: 0, outside: 3_000_000, count: 65536 }];
    const ns = await createContainerNamespaces(map, map, { network: true });
    try {
      const NS_GET_USERNS = 0xb701;
      const userIno = fstatSync(ns.user).ino;
      for (const fd of [ns.uts, ns.ipc, ns.net!]) {
        const owner = ioctlIntRaw(fd, NS_GET_USERNS, 0);
        expect(owner).toBeGreaterThanOrEqual(0);
        expect(fstatSync(owner).ino).toBe(userIno);
        closeQuietly(owner);
      }
      // None of them is ours.
      expect(fstatSync(ns.net!).ino).not.toBe(statSync('/proc/self/ns/net').ino);
      expect(readFileSync('/proc/self/uid_map', 'utf8')).toMatch(/^\s+0\s+0\s+4294967295/);
    } finally {
      ns.close();
      ns.close();
    }
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AF, closeQuietly, SOCK, sendto, sockaddrUn, socket } from '@sd/sys';
import { afterEach, describe, expect, it } from 'vitest';
import { NotifySocket } from '../src/notify/notify.js';

// The notify socket on a real AF_UNIX datagram socket, the sender's pid as the kernel
// reports it (SO_PASSCRED). sd-nspawn watches it before the payload's pid is known
// (while the child mounts the tree), through a function that gives the pid.

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function send(path: string, text: string): void {
  const fd = socket(AF.UNIX, SOCK.DGRAM);
  try {
    sendto(fd, Buffer.from(text), sockaddrUn(path));
  } finally {
    closeQuietly(fd);
  }
}

const settle = () => new Promise((r) => setTimeout(r, 50));

describe('NotifySocket.listen', () => {
  it('hears nobody while the pid is unknown, then only that pid', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-notify-'));
    dirs.push(dir);
    const notify = new NotifySocket(join(dir, 'notify'));
    let pid: number | undefined;
    const heard: string[] = [];
    const ignored: string[] = [];
    try {
      notify.listen(() => pid, {
        onMessage: (m) => heard.push(m.fields.STATUS ?? ''),
        onIgnored: (why) => ignored.push(why),
      });
      send(notify.path, 'STATUS=before');
      await settle();
      expect(heard).toEqual([]);
      expect(ignored).toEqual([`notification from pid ${process.pid}, not the payload (not running yet)`]);
      pid = process.pid + 1;
      send(notify.path, 'STATUS=other');
      await settle();
      expect(heard).toEqual([]);
      pid = process.pid;
      send(notify.path, 'READY=1\nSTATUS=mine');
      await settle();
      expect(heard).toEqual(['mine']);
    } finally {
      notify.close();
    }
  });
});

import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SyscallError } from '../src/errors.js';
import { closeQuietly, read, writeAll } from '../src/fd/fd.js';
import { poller } from '../src/poller/poller.js';
import {
  attachTerminal,
  closePty,
  getTermios,
  getWindowSize,
  LFLAG,
  makeRaw,
  OFLAG,
  openPty,
  setTermios,
  setWindowSize,
  VCC,
} from '../src/pty/pty.js';
import { SpawnProgram } from '../src/spawn/program.js';
import { spawn } from '../src/spawn/spawn.js';

/** Reads the master through the poller until every peer is closed (EIO) or `until` matches. */
function readMaster(master: number, until?: RegExp): Promise<string> {
  let out = '';
  return new Promise((resolve, reject) => {
    const done = () => {
      poller().remove(master);
      resolve(out);
    };
    poller().add(master, () => {
      try {
        for (;;) {
          const b = Buffer.alloc(4096);
          const n = read(master, b);
          if (n < 0) return;
          if (n === 0) return done();
          out += b.subarray(0, n).toString();
          if (until?.test(out)) return done();
        }
      } catch (e) {
        if (e instanceof SyscallError && e.code === 'EIO') return done();
        poller().remove(master);
        reject(e);
      }
    });
  });
}

describe('pseudo-terminals', () => {
  it('opens a master and its peer', () => {
    const pty = openPty();
    try {
      expect(pty.path).toBe(`/dev/pts/${pty.number}`);
      expect(existsSync(pty.path)).toBe(true);
      // Bytes written to the peer come out of the master (with ONLCR's \r\n).
      writeAll(pty.peer, 'ping\n');
      const b = Buffer.alloc(64);
      expect(b.subarray(0, read(pty.master, b)).toString()).toBe('ping\r\n');
    } finally {
      closePty(pty);
    }
  });

  it('gets and sets window size and termios', () => {
    const pty = openPty();
    try {
      setWindowSize(pty.master, { rows: 40, cols: 132 });
      expect(getWindowSize(pty.peer)).toEqual({ rows: 40, cols: 132, xpixel: 0, ypixel: 0 });
      const cooked = getTermios(pty.peer);
      expect(cooked.lflag & LFLAG.ICANON).toBeTruthy();
      expect(cooked.lflag & LFLAG.ECHO).toBeTruthy();
      setTermios(pty.peer, makeRaw(cooked));
      const raw = getTermios(pty.peer);
      expect(raw.lflag & (LFLAG.ICANON | LFLAG.ECHO | LFLAG.ISIG)).toBe(0);
      expect(raw.oflag & OFLAG.OPOST).toBe(0);
      expect(raw.cc[VCC.VMIN]).toBe(1);
      // Raw output: no \r added.
      writeAll(pty.peer, 'x\n');
      const b = Buffer.alloc(16);
      expect(b.subarray(0, read(pty.master, b)).toString()).toBe('x\n');
    } finally {
      closePty(pty);
    }
  });

  it('is the controlling terminal of a spawned shell that sees its size', async () => {
    const pty = openPty();
    let peer = pty.peer;
    try {
      setWindowSize(pty.master, { rows: 33, cols: 101 });
      const p = new SpawnProgram();
      attachTerminal(p, pty.peer);
      p.resetSignals().execve(
        '/bin/sh',
        ['sh', '-c', 'stty size; tty; test -t 0 && echo interactive; echo done'],
        ['PATH=/usr/bin:/bin'],
      );
      const output = readMaster(pty.master);
      const child = await spawn(p);
      closeQuietly(peer);
      peer = -1;
      const [status, out] = await Promise.all([child.exited, output]);
      expect(status.code).toBe(0);
      expect(out.split('\r\n')).toEqual(['33 101', pty.path, 'interactive', 'done', '']);
    } finally {
      closePty({ ...pty, peer });
    }
  });
});

import { isatty, poller, read, SyscallError, setWindowSize, writeAll } from '@sd/sys';
import type { ConsoleMode } from '../settings/settings.js';

/**
 * The host side of the container's /dev/console: copies the pty master to
 * our stdout (all modes but pipe), our stdin to the master (interactive),
 * keeps the window size in step, and watches for Ctrl-] pressed three
 * times within a second, which kills the container.
 */

/** The console mode when none is asked for: interactive on a terminal, a pipe otherwise. */
export function defaultConsoleMode(mode: ConsoleMode | undefined): Exclude<ConsoleMode, 'autopipe'> {
  if (mode !== undefined && mode !== 'autopipe') return mode;
  // isatty(), not process.stdin.isTTY: that would build the stdio streams (~10 ms at start).
  return isatty(0) && isatty(1) ? 'interactive' : 'pipe';
}

const CTRL_RIGHT_BRACKET = 0x1d;

export interface ConsoleForwarder {
  /** Copies what is still buffered, stops, and restores the terminal. */
  close(): void;
}

export interface ForwardOptions {
  master: number;
  mode: 'interactive' | 'read-only' | 'passive';
  /** Called after Ctrl-] three times within one second. */
  onEscape: () => void;
}

export function forwardConsole({ master, mode, onEscape }: ForwardOptions): ConsoleForwarder {
  const stdin = process.stdin;
  const out = process.stdout;
  const drain = () => {
    const buf = Buffer.allocUnsafe(65536);
    for (;;) {
      let n: number;
      try {
        n = read(master, buf);
      } catch (e) {
        // EIO: every process closed the console; the container is going away.
        if (e instanceof SyscallError && e.code === 'EIO') return;
        throw e;
      }
      if (n <= 0) return;
      if (mode !== 'passive') out.write(Buffer.from(buf.subarray(0, n)));
    }
  };
  poller().add(master, drain);

  const resize = () => {
    if (out.isTTY) setWindowSize(master, { rows: out.rows, cols: out.columns });
  };
  resize();
  out.on('resize', resize);

  let presses: number[] = [];
  const onData = (data: Buffer) => {
    for (const byte of data) {
      if (byte !== CTRL_RIGHT_BRACKET) continue;
      const now = Date.now();
      presses = presses.filter((t) => now - t < 1000).concat(now);
      if (presses.length >= 3) {
        onEscape();
        return;
      }
    }
    try {
      writeAll(master, data);
    } catch {
      // The container's side is gone or full; typed input is dropped, as on a real console.
    }
  };
  const raw = mode === 'interactive' && stdin.isTTY;
  if (mode === 'interactive') {
    if (raw) stdin.setRawMode(true);
    stdin.on('data', onData);
    stdin.resume();
  }

  return {
    close() {
      try {
        drain();
      } catch {}
      poller().remove(master);
      out.off('resize', resize);
      if (mode === 'interactive') {
        stdin.off('data', onData);
        stdin.pause();
        if (raw) stdin.setRawMode(false);
      }
    },
  };
}

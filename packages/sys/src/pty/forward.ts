import { SyscallError } from '../errors.js';
import { isatty, read, writeAll } from '../fd/fd.js';
import { poller } from '../poller/poller.js';
import { getWindowSize, setWindowSize } from './termios.js';

/**
 * Connects a pty master to our own terminal: what the other side writes
 * goes to our stdout, what is typed goes to the master (stdin in raw mode
 * when it is a terminal), the window size follows ours, and ^] pressed three
 * times within a second calls `onEscape` — the way systemd-nspawn and
 * machinectl attach a container's console or shell. Node's own streams
 * refuse tty fds, so the master is read through the poller.
 */

export interface PtyForwardOptions {
  master: number;
  /** Copy our stdin to the master. */
  input: boolean;
  /** Copy the master to our stdout (else its output is read and dropped). */
  output: boolean;
  /** ^] three times within 1 s; only looked for when stdin is a terminal. */
  onEscape?: () => void;
  /**
   * Until the other side has written something, a hangup means nobody has
   * opened it yet (a getty about to start) rather than that it is gone: wait.
   */
  ignoreInitialHangup?: boolean;
}

export interface PtyForwarder {
  /** Resolves when the other side is gone (every slave fd closed: EIO on the master). */
  readonly hangup: Promise<void>;
  /** Copies what is still buffered, stops, and restores our terminal. Safe to call twice. */
  close(): void;
}

const CTRL_RIGHT_BRACKET = 0x1d;

export function forwardPty({
  master,
  input,
  output,
  onEscape,
  ignoreInitialHangup,
}: PtyForwardOptions): PtyForwarder {
  // Node's stdio streams are made on first access, at a cost (stream
  // modules loaded): only what is used is touched.
  let closed = false;
  let hungUp: () => void = () => {};
  const hangup = new Promise<void>((resolve) => {
    hungUp = resolve;
  });

  let sawData = false;
  const drain = (): boolean => {
    const buf = Buffer.allocUnsafe(65536);
    for (;;) {
      let n: number;
      try {
        n = read(master, buf);
      } catch (e) {
        if (e instanceof SyscallError && e.code === 'EIO') return false;
        throw e;
      }
      if (n < 0) return true;
      if (n === 0) return false;
      sawData = true;
      if (output) process.stdout.write(Buffer.from(buf.subarray(0, n)));
    }
  };
  const onReady = () => {
    if (drain()) return;
    // Level-triggered: a hung-up master must leave the poller, or it would fire forever.
    poller().remove(master);
    if (ignoreInitialHangup && !sawData && !closed)
      setTimeout(() => closed || poller().add(master, onReady), 100);
    else hungUp();
  };
  poller().add(master, onReady);

  const resize = () => {
    try {
      if (isatty(1)) setWindowSize(master, getWindowSize(1));
    } catch {}
  };
  resize();
  // Only a terminal has a size to follow.
  const ttyOut = isatty(1);
  if (ttyOut) process.stdout.on('resize', resize);

  const tty = isatty(0);
  let presses: number[] = [];
  const onData = (data: Buffer) => {
    if (tty && onEscape && data.includes(CTRL_RIGHT_BRACKET)) {
      const now = Date.now();
      for (const b of data) if (b === CTRL_RIGHT_BRACKET) presses.push(now);
      presses = presses.filter((t) => now - t < 1000);
      if (presses.length >= 3) {
        onEscape();
        return;
      }
    }
    try {
      writeAll(master, data);
    } catch {
      // The other side is gone or full: typed input is dropped, as on a real console.
    }
  };
  const raw = input && tty;
  if (input) {
    if (raw) process.stdin.setRawMode(true);
    process.stdin.on('data', onData);
    process.stdin.resume();
  }

  return {
    hangup,
    close() {
      if (closed) return;
      closed = true;
      try {
        drain();
      } catch {}
      poller().remove(master);
      if (ttyOut) process.stdout.off('resize', resize);
      if (input) {
        process.stdin.off('data', onData);
        process.stdin.pause();
        if (raw) process.stdin.setRawMode(false);
      }
    },
  };
}

import { Socket } from 'node:net';
import { closeQuietly, getWindowSize, isatty, setWindowSize } from '@sd/sys';
import type { VerbContext } from './context.js';

/**
 * Connects the pty master that OpenMachineShell/OpenMachineLogin returned
 * to our terminal: stdin raw, the window size copied (and again on
 * SIGWINCH), bytes forwarded both ways until the machine side closes (EIO
 * on the master). Interactive sessions end on ^] pressed three times
 * within a second, as in systemd.
 */
export function attachPty(masterFd: number, ctx: VerbContext, interactive: boolean): Promise<void> {
  const stdinTty = isatty(ctx.stdinFd) && process.stdin.isTTY === true;
  const syncSize = () => {
    try {
      if (isatty(ctx.stdoutFd)) setWindowSize(masterFd, getWindowSize(ctx.stdoutFd));
    } catch {}
  };
  syncSize();
  const master = new Socket({ fd: masterFd, readable: true, writable: true });
  return new Promise<void>((resolve) => {
    let escapes: number[] = [];
    let done = false;
    const onResize = () => syncSize();
    const onInput = (d: Buffer) => {
      if (interactive && stdinTty) {
        const now = Date.now();
        for (const b of d) if (b === 0x1d) escapes.push(now);
        escapes = escapes.filter((t) => now - t < 1000);
        if (escapes.length >= 3) return finish();
      }
      master.write(d);
    };
    const finish = () => {
      if (done) return;
      done = true;
      process.stdin.off('data', onInput);
      process.stdin.pause();
      process.stdout.off('resize', onResize);
      process.off('SIGWINCH', onResize);
      if (stdinTty) process.stdin.setRawMode(false);
      master.destroy();
      closeQuietly(masterFd);
      resolve();
    };
    if (stdinTty) process.stdin.setRawMode(true);
    process.stdout.on('resize', onResize);
    process.on('SIGWINCH', onResize);
    process.stdin.on('data', onInput);
    process.stdin.resume();
    master.on('data', (d: Buffer) => process.stdout.write(d));
    // The slave side closed: the master reads EIO (an 'error') or EOF.
    master.on('error', finish);
    master.on('end', finish);
    master.on('close', finish);
  });
}

import { forwardPty, isatty, type PtyForwarder } from '@sd/sys';
import type { ConsoleMode } from '../settings/settings.js';

/**
 * The host side of the container's /dev/console, per --console: the pty
 * master copied to our stdout (all modes but pipe), our stdin to the master
 * (interactive), ^] three times within a second kills the container.
 */

/**
 * The library's console mode when none is asked for: interactive on a
 * terminal, a pipe otherwise (the CLI chooses read-only off a terminal, as
 * systemd-nspawn does, before it calls the library).
 */
export function defaultConsoleMode(mode: ConsoleMode | undefined): Exclude<ConsoleMode, 'autopipe'> {
  if (mode !== undefined && mode !== 'autopipe') return mode;
  // isatty(), not process.stdin.isTTY: that would build the stdio streams (~10 ms at start).
  return isatty(0) && isatty(1) ? 'interactive' : 'pipe';
}

export interface ForwardOptions {
  master: number;
  mode: 'interactive' | 'read-only' | 'passive';
  /** Called after Ctrl-] three times within one second. */
  onEscape: () => void;
}

export function forwardConsole({ master, mode, onEscape }: ForwardOptions): PtyForwarder {
  return forwardPty({ master, input: mode === 'interactive', output: mode !== 'passive', onEscape });
}

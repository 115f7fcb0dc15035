import { closeQuietly, forwardPty } from '@sd/sys';
import type { VerbContext } from './context.js';

/**
 * Connects the pty master that OpenMachineShell/OpenMachineLogin returned
 * to our terminal until the machine side closes (EIO on the master);
 * interactive sessions also end on ^] pressed three times within a second,
 * as in systemd.
 */
export async function attachPty(
  masterFd: number,
  _ctx: VerbContext,
  interactive: boolean,
  /** Login: the getty opens (and vhangups) its tty after we attach; an early hangup is not the end. */
  waitForPeer = false,
): Promise<void> {
  let escaped3: () => void = () => {};
  const escaped = new Promise<void>((resolve) => {
    escaped3 = resolve;
  });
  const fwd = forwardPty({
    master: masterFd,
    input: true,
    output: true,
    onEscape: interactive ? escaped3 : undefined,
    ignoreInitialHangup: waitForPeer,
  });
  try {
    await Promise.race([fwd.hangup, escaped]);
  } finally {
    fwd.close();
    closeQuietly(masterFd);
  }
}

import {
  AT,
  closeQuietly,
  O,
  openInRoot,
  openPtyPeer,
  type Pty,
  ptyNumber,
  S_IF,
  SdError,
  statAt,
  unlockPty,
} from '@sd/sys';

/**
 * A pty that lives in the machine's own devpts: its /dev/pts/ptmx opened
 * through the machine's root fd (RESOLVE_IN_ROOT, so /dev/pts cannot be a
 * link out of it), checked to be the ptmx device (5:2). `path` is the
 * peer's name inside the machine.
 */
export function openMachinePty(rootFd: number): Pty {
  let master: number | undefined;
  for (const p of ['/dev/pts/ptmx', '/dev/ptmx']) {
    try {
      master = openInRoot(rootFd, p, O.RDWR | O.NOCTTY);
    } catch {
      continue;
    }
    const st = statAt(master, '', AT.EMPTY_PATH);
    if ((st.mode & S_IF.MT) === S_IF.CHR && st.rdevMajor === 5 && st.rdevMinor === 2) break;
    closeQuietly(master);
    master = undefined;
  }
  if (master === undefined) throw new SdError('ENOENT', 'The machine has no /dev/pts/ptmx');
  try {
    unlockPty(master);
    const number = ptyNumber(master);
    const peer = openPtyPeer(master);
    return { master, peer, number, path: `/dev/pts/${number}` };
  } catch (e) {
    closeQuietly(master);
    throw e;
  }
}

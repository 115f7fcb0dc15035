import {
  AT,
  closeQuietly,
  Data,
  O,
  openPtyPeer,
  type Pty,
  ptyNumber,
  S_IF,
  SdError,
  SpawnError,
  syscallNumber,
  unlockPty,
  writeAll,
} from '@sd/sys';
import { type MachineRef, READ_TIMEOUT_MS } from '../inspect/read-in-machine.js';
import { enterMachineAsRoot, type FdHelperTarget, onlyFd, runFdHelper, sendFd } from './fd-helper.js';

/**
 * A pty that lives in the machine's own devpts, opened by a helper inside
 * the machine (fd-helper.ts). The helper opens /dev/pts/ptmx and reports
 * fstatfs and statx of what it got; only when that is a devpts file system
 * (its f_type is the kernel's, a FUSE server cannot fake it) and the ptmx
 * device 5:2 does the daemon let it pass the fd over. Anything else, or no
 * answer in time, and the helper is killed: the daemon never holds, stats
 * or closes a file of the machine that could block.
 */

const DEVPTS_SUPER_MAGIC = 0x1cd1;
const STATFS_SIZE = 120;
const STATX_SIZE = 256;

export function buildPtyProgram(o: FdHelperTarget & { path: string }) {
  const p = enterMachineAsRoot(o);
  const fd = p.openat(AT.FDCWD, o.path, O.RDWR | O.NOCTTY | O.CLOEXEC, 0, { label: `open ${o.path}` });
  const sfs = new Data(Buffer.alloc(STATFS_SIZE), 'statfs');
  p.syscall('fstatfs', syscallNumber('fstatfs'), [fd, sfs]);
  p.syscall('write', p.sys.write, [o.sock, sfs, STATFS_SIZE]);
  const stx = new Data(Buffer.alloc(STATX_SIZE), 'statx');
  p.syscall('statx', syscallNumber('statx'), [fd, '', AT.EMPTY_PATH, 0x1 /* STATX_TYPE */, stx]);
  p.syscall('write', p.sys.write, [o.sock, stx, STATX_SIZE]);
  // The gate: the daemon answers only when the file is the machine's ptmx.
  p.syscall('read', p.sys.read, [o.sock, new Data(Buffer.alloc(8), 'go'), 1]);
  sendFd(p, fd, o);
  return p.exit(0);
}

/** Opens the machine's ptmx; `path` is the peer's name inside the machine. */
export async function openMachinePty(m: MachineRef, timeoutMs = READ_TIMEOUT_MS): Promise<Pty> {
  let master: number | undefined;
  for (const path of ['/dev/pts/ptmx', '/dev/ptmx']) {
    try {
      master = await openPtmx(m, path, timeoutMs);
      break;
    } catch (e) {
      if (!(e instanceof SpawnError && e.code === 'ENOENT')) throw e;
    }
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

function openPtmx(m: MachineRef, path: string, timeoutMs: number): Promise<number> {
  const what = `Opening ${path} in the machine`;
  return runFdHelper(
    m,
    what,
    timeoutMs,
    (t) => buildPtyProgram({ ...t, path }),
    async (next, mine) => {
      const sfs = (await next()).data;
      const stx = (await next()).data;
      if (sfs.length < 8 || stx.length < STATX_SIZE) throw new SdError('EIO', `${what} failed`);
      const type = Number(sfs.readBigInt64LE(0)) >>> 0;
      const mode = stx.readUInt16LE(28);
      const isPtmx =
        (mode & S_IF.MT) === S_IF.CHR && stx.readUInt32LE(128) === 5 && stx.readUInt32LE(132) === 2;
      if (type !== DEVPTS_SUPER_MAGIC || !isPtmx)
        throw new SdError('EBADF', `${path} in the machine is not the ptmx of a devpts file system`);
      writeAll(mine, Buffer.of(1));
      return onlyFd(await next(), what);
    },
  );
}

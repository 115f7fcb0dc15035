import { CLONE, O } from '../constants.js';
import { InvalidArgumentError, SdError } from '../errors.js';
import { close, closeQuietly, open, writeAll } from '../fd/fd.js';
import { SpawnProgram } from '../spawn/program.js';
import { spawn } from '../spawn/spawn.js';

/** One line of a uid_map/gid_map: ids `inside`..`inside+count-1` are `outside`.. on the host. */
export interface IdMapping {
  inside: number;
  outside: number;
  count: number;
}

const MAX_ID = 0xffffffff;

/** The text the kernel expects in /proc/PID/uid_map (at most 340 lines, written in one write). */
export function formatIdMap(map: readonly IdMapping[]): string {
  if (map.length === 0) throw new InvalidArgumentError('an id map needs at least one mapping');
  if (map.length > 340)
    throw new InvalidArgumentError(`an id map has at most 340 mappings, not ${map.length}`);
  return map
    .map(({ inside, outside, count }) => {
      for (const [k, v] of [
        ['inside', inside],
        ['outside', outside],
        ['count', count],
      ] as const) {
        if (!Number.isInteger(v) || v < 0 || v > MAX_ID)
          throw new InvalidArgumentError(`id map: bad ${k} ${v}`);
      }
      if (count === 0 || inside + count - 1 > MAX_ID || outside + count - 1 > MAX_ID)
        throw new InvalidArgumentError(`id map: bad range ${inside} ${outside} ${count}`);
      return `${inside} ${outside} ${count}\n`;
    })
    .join('');
}

function writeProcFile(path: string, text: string): void {
  const fd = open(path, O.WRONLY);
  try {
    // The kernel takes a map in a single write(); writeAll does one for short text.
    writeAll(fd, text);
  } finally {
    closeQuietly(fd);
  }
}

/**
 * How long a namespace helper's end is waited for on this thread: once
 * released it only exits, within microseconds; a wait through the poller
 * would cost a start ~1 ms (the poller's thread and its round trip). Bounded
 * and short, so daemons may take it too.
 */
const HELPER_EXIT_MS = 5;

/**
 * An fd of a new user namespace with the given mappings (for idmapped mounts
 * via mount_setattr MOUNT_ATTR_IDMAP, or for setns in a spawn program),
 * made without touching the Node process: a child is cloned into a new user
 * namespace and waits on its sync pipe while we write its maps and open
 * /proc/PID/ns/user; then it exits, and the namespace lives on through the fd.
 * The caller closes the fd.
 */
export async function createUserNamespaceFd(
  uidMap: readonly IdMapping[],
  gidMap: readonly IdMapping[] = uidMap,
): Promise<number> {
  const uidText = formatIdMap(uidMap);
  const gidText = formatIdMap(gidMap);
  const program = new SpawnProgram().waitForParent().exit(0);
  let nsFd: number | undefined;
  try {
    const child = await spawn(program, {
      cloneFlags: CLONE.NEWUSER,
      briefWaitMs: HELPER_EXIT_MS,
      beforeRun: (child) => {
        // The child cannot exit or be reaped while it waits, so its pid is stable here.
        writeProcFile(`/proc/${child.pid}/uid_map`, uidText);
        writeProcFile(`/proc/${child.pid}/gid_map`, gidText);
        nsFd = open(`/proc/${child.pid}/ns/user`, O.RDONLY);
      },
    });
    await child.exitedSoon(HELPER_EXIT_MS);
    if (nsFd === undefined)
      throw new SdError('ESPAWN', 'user namespace child ended before its maps were written');
    const fd = nsFd;
    nsFd = undefined;
    return fd;
  } finally {
    if (nsFd !== undefined) close(nsFd);
  }
}

/** Namespaces owned by one new user namespace, held by fds (see createContainerNamespaces). */
export interface ContainerNamespaces {
  user: number;
  uts: number;
  ipc: number;
  net?: number;
  close(): void;
}

/**
 * A user namespace with its maps and, owned by it, fresh UTS, IPC and (with
 * `network`) network namespaces, all as fds. A container made from them can
 * do its mount setup as the host's root in a mount namespace of the host's
 * user namespace, and join the user namespace afterwards: the mount
 * namespace it then unshares is owned by the container's user namespace, so
 * the kernel locks every mount copied into it (MNT_LOCKED, MNT_LOCK_READONLY)
 * against umount and remount from inside, while the container's root still
 * owns its UTS, IPC and network namespaces. (A PID namespace cannot be made
 * ahead: /proc/PID/ns/pid_for_children opens only once it has an init.)
 */
export async function createContainerNamespaces(
  uidMap: readonly IdMapping[],
  gidMap: readonly IdMapping[] = uidMap,
  o: { network?: boolean } = {},
): Promise<ContainerNamespaces> {
  const uidText = formatIdMap(uidMap);
  const gidText = formatIdMap(gidMap);
  const program = new SpawnProgram().waitForParent().exit(0);
  const opened: number[] = [];
  const ns = (pid: number, kind: string) => {
    const fd = open(`/proc/${pid}/ns/${kind}`, O.RDONLY | O.CLOEXEC);
    opened.push(fd);
    return fd;
  };
  try {
    let fds: Omit<ContainerNamespaces, 'close'> | undefined;
    // The helper shares our memory (CLONE_VM): the clone itself puts it in
    // the new user namespace and it changes no ids, so our memory stays as
    // it was (SpawnProgram.canShareMemory); it makes fresh namespaces nobody
    // else is in, waits and exits before any of them is used, so nothing in
    // them ever sees it. Sparing the copy of Node's page tables is most of a
    // spawn's cost.
    const child = await spawn(program, {
      cloneFlags: CLONE.NEWUSER | CLONE.NEWUTS | CLONE.NEWIPC | (o.network ? CLONE.NEWNET : 0),
      briefWaitMs: HELPER_EXIT_MS,
      beforeRun: (child) => {
        writeProcFile(`/proc/${child.pid}/uid_map`, uidText);
        writeProcFile(`/proc/${child.pid}/gid_map`, gidText);
        fds = {
          user: ns(child.pid, 'user'),
          uts: ns(child.pid, 'uts'),
          ipc: ns(child.pid, 'ipc'),
          ...(o.network ? { net: ns(child.pid, 'net') } : {}),
        };
      },
    });
    await child.exitedSoon(HELPER_EXIT_MS);
    if (!fds) throw new SdError('ESPAWN', 'the namespace helper ended before its namespaces were opened');
    const done = fds;
    opened.length = 0;
    let open_ = true;
    return {
      ...done,
      close: () => {
        // Once only: a second close could hit an fd number reused since.
        if (open_) closeQuietly(done.user, done.uts, done.ipc, done.net);
        open_ = false;
      },
    };
  } finally {
    closeQuietly(...opened);
  }
}

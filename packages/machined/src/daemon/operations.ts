import { closeQuietly, O, open, openRoot, SdError } from '@sd/sys';
import { BusError, MACHINE_ERROR } from '../bus/errors.js';
import type { CallContext } from '../bus/types.js';
import { openMachineLogin } from '../enter/login.js';
import { openMachinePty } from '../enter/pty.js';
import { openMachineShell } from '../enter/shell.js';
import { machineAddresses } from '../inspect/addresses.js';
import { machineOsRelease } from '../inspect/os-release.js';
import { mapIn, mapOut, readIdMap, uidShift } from '../inspect/uid-map.js';
import { isMachineUnitPath, MachineCgroup } from '../registry/cgroup.js';
import type { Machine } from '../registry/machine.js';
import { bindMountIntoMachine } from '../transfer/bind.js';
import { checkPaths } from '../transfer/copy.js';
import { type Operation, OperationPool } from '../worker/client.js';

/**
 * The cgroups a process entering `m` joins: the leader's own (sd-nspawn's
 * payload group, a guest's init.scope), where the machine's device policy
 * and cgroup namespace root are, as long as they lie in the machine's unit;
 * else the unit itself.
 */
function enteringCgroup(m: Machine): MachineCgroup | undefined {
  const at = MachineCgroup.ofProcess(m.leader);
  return at && isMachineUnitPath(at.mainPath, m.name) ? at : m.cgroup;
}

/**
 * What the Manager's …Machine methods and the Machine object's methods do,
 * once: the Manager looks the machine up by name, the object by path.
 * Authorization happens before these are called.
 */

const isHost = (m: Machine) => m.class === 'host';

async function withPidfd<T>(m: Machine, fn: (pidfd: number) => T | Promise<T>): Promise<T> {
  const fd = m.openLeaderPidfd();
  try {
    return await fn(fd);
  } finally {
    closeQuietly(fd);
  }
}

async function withRoot<T>(m: Machine, fn: (rootFd: number) => T | Promise<T>): Promise<T> {
  // The pidfd pins the leader while its root is opened by pid.
  return withPidfd(m, async () => {
    const root = openRoot(`/proc/${m.leader}/root`);
    try {
      return await fn(root);
    } finally {
      closeQuietly(root);
    }
  });
}

export async function getAddresses(m: Machine): Promise<Array<[number, Buffer]>> {
  try {
    const list = await withPidfd(m, (fd) => machineAddresses(m.leader, fd, isHost(m)));
    return list.map((a) => [a.family, a.address]);
  } catch (e) {
    if (e instanceof SdError && e.code === 'ENONET')
      throw new BusError(
        MACHINE_ERROR.NoPrivateNetworking,
        `Machine '${m.name}' does not use private networking`,
      );
    throw e;
  }
}

export async function getOsRelease(m: Machine): Promise<Record<string, string>> {
  return withPidfd(m, (pidfd) =>
    machineOsRelease({ leader: m.leader, pidfd, cgroup: enteringCgroup(m) }, isHost(m)),
  );
}

export async function getUidShift(m: Machine): Promise<number> {
  if (isHost(m)) return 0;
  return withPidfd(m, () => uidShift(m.leader));
}

export async function openPty(m: Machine, ctx: CallContext): Promise<[number, string]> {
  const pty = await withPidfd(m, (pidfd) =>
    openMachinePty({ leader: m.leader, pidfd, cgroup: enteringCgroup(m) }),
  );
  closeQuietly(pty.peer);
  ctx.closeAfterReply(pty.master);
  return [pty.master, pty.path];
}

export async function openLogin(m: Machine, ctx: CallContext): Promise<[number, string]> {
  const r = await withPidfd(m, (pidfd) =>
    openMachineLogin(m.name, { leader: m.leader, pidfd, cgroup: enteringCgroup(m) }),
  );
  ctx.closeAfterReply(r.master);
  return [r.master, r.path];
}

export async function openShell(
  m: Machine,
  ctx: CallContext,
  user: string,
  path: string,
  args: string[],
  env: string[],
): Promise<[number, string]> {
  const r = await withPidfd(m, (pidfd) =>
    openMachineShell(
      { name: m.name, leader: m.leader, pidfd, cgroup: enteringCgroup(m) },
      { user, path, args, env },
    ),
  );
  ctx.closeAfterReply(r.master);
  return [r.master, r.path];
}

export async function openRootDirectory(m: Machine, ctx: CallContext): Promise<number> {
  // The host is our own root (as systemd-machined does it), not PID 1's: a sandbox may hide PID 1.
  const fd = isHost(m)
    ? open('/', O.RDONLY | O.DIRECTORY | O.CLOEXEC)
    : await withPidfd(m, () => open(`/proc/${m.leader}/root`, O.RDONLY | O.DIRECTORY));
  ctx.closeAfterReply(fd);
  return fd;
}

export async function bindMount(
  m: Machine,
  source: string,
  dest: string,
  readOnly: boolean,
  mkdir: boolean,
): Promise<void> {
  if (isHost(m)) throw new SdError('EOPNOTSUPP', 'Bind mounting on the host is not supported');
  await withPidfd(m, (pidfd) =>
    withRoot(m, (rootFd) => {
      const creator = {
        uid: mapOut(readIdMap(m.leader, 'uid'), 0) ?? 0,
        gid: mapOut(readIdMap(m.leader, 'gid'), 0) ?? 0,
      };
      return bindMountIntoMachine({ rootFd, pidfd, source, dest, readOnly, mkdir, creator });
    }),
  );
}

export const COPY_REPLACE = 1n;

/** The worker processes of this daemon's long operations (copies here; image operations through the pool). */
export const workers = new OperationPool();

/** The operations running for each machine: cancelled when it is terminated or goes. */
const machineOps = new Map<Machine, Set<Operation<unknown>>>();

/** Stops every operation of `m` (its workers remove what they had written). */
export function cancelOperations(m: Machine, why: string): void {
  for (const op of machineOps.get(m) ?? []) op.cancel(why);
}

const PATH_MAX = 4096;

function checkCopyPath(what: string, p: string): void {
  if (!p.startsWith('/')) throw new SdError('EINVAL', `${what} path must be absolute: ${JSON.stringify(p)}`);
  if (Buffer.byteLength(p) >= PATH_MAX) throw new SdError('EINVAL', `${what} path is too long`);
}

export async function copy(
  m: Machine,
  direction: 'to' | 'from',
  source: string,
  dest: string | undefined,
  flags: bigint,
): Promise<void> {
  if (isHost(m)) throw new SdError('EOPNOTSUPP', 'Copying files to or from the host is not supported');
  if ((flags & ~COPY_REPLACE) !== 0n)
    throw new SdError('EINVAL', `Invalid copy flags 0x${flags.toString(16)}`);
  const to = dest === undefined || dest === '' ? source : dest;
  checkCopyPath('Source', source);
  checkCopyPath('Destination', to);
  // Checked here too: a call that cannot work does not cost a worker process.
  checkPaths(source, to);
  if (m.state === 'closing') throw new SdError('ESHUTDOWN', `Machine '${m.name}' is terminating`);
  const replace = (flags & COPY_REPLACE) !== 0n;
  const op = await withRoot(m, (rootFd) => {
    const uids = readIdMap(m.leader, 'uid');
    const creator = { uid: mapOut(uids, 0) ?? 0, gid: mapOut(readIdMap(m.leader, 'gid'), 0) ?? 0 };
    return workers.start<void>({ op: 'copy', direction, source, dest: to, replace, uids, creator }, rootFd);
  });
  const set = machineOps.get(m) ?? new Set();
  machineOps.set(m, set);
  set.add(op);
  try {
    await op.result;
  } catch (e) {
    // A file the copy could not read or write is not the caller being refused: the
    // caller is root. Say what failed where, under the errno's own name.
    if (e instanceof SdError && !(e instanceof BusError) && (e.code === 'EACCES' || e.code === 'EPERM'))
      throw new BusError(
        `System.Error.${e.code}`,
        `Failed to copy '${source}' ${direction} machine '${m.name}' (${to}): ${e.message}`,
        { cause: e },
      );
    throw e;
  } finally {
    set.delete(op);
    if (set.size === 0 && machineOps.get(m) === set) machineOps.delete(m);
  }
}

/** MapFromMachineUser/Group: an id inside → the host's. */
export async function mapFromMachine(m: Machine, kind: 'uid' | 'gid', id: number): Promise<number> {
  if (m.class !== 'container') throw new SdError('EINVAL', 'Not supported for non-container machines.');
  const out = await withPidfd(m, () => mapOut(readIdMap(m.leader, kind), id));
  if (out === undefined)
    throw new BusError(
      kind === 'uid' ? MACHINE_ERROR.NoSuchUserMapping : MACHINE_ERROR.NoSuchGroupMapping,
      `Machine '${m.name}' has no ${kind === 'uid' ? 'user' : 'group'} mapping for ${id}.`,
    );
  return out;
}

/** MapToMachineUser/Group: a host id → the machine and id inside that has it. */
export function mapToMachine(machines: Machine[], kind: 'uid' | 'gid', id: number): [Machine, number] {
  for (const m of machines) {
    if (m.class !== 'container') continue;
    let map: ReturnType<typeof readIdMap>;
    try {
      map = readIdMap(m.leader, kind);
    } catch {
      continue;
    }
    if (map.length === 1 && map[0]!.outside === 0 && map[0]!.inside === 0) continue;
    const inner = mapIn(map, id);
    if (inner !== undefined) return [m, inner];
  }
  throw new BusError(
    kind === 'uid' ? MACHINE_ERROR.NoSuchUserMapping : MACHINE_ERROR.NoSuchGroupMapping,
    `${kind === 'uid' ? 'User' : 'Group'} ${id} belongs to no machine.`,
  );
}

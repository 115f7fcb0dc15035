import { readFileSync } from 'node:fs';
import {
  CLONE,
  clearAmbientCapabilities,
  containerSeccompFilter,
  dropBoundingSet,
  loadFilterStep,
  pidfdSendSignal,
  SdError,
  type SpawnProgram,
  setCapabilities,
  setNoNewPrivileges,
} from '@sd/sys';

/**
 * What a process that enters a machine becomes before anything inside can
 * see it (ARCHITECTURE.md §7): the privileges of the machine's own processes, read
 * from its leader's /proc/PID/status — the capability bounding set
 * (CapBnd), no_new_privs (NoNewPrivs) and whether it runs under a seccomp
 * filter (Seccomp: 2, then it gets the container filter for that bounding
 * set, the one sd-nspawn gives its payload).
 */

export interface LeaderSecurity {
  /** The leader's capability bounding set. */
  capBnd: bigint;
  noNewPrivs: boolean;
  /** The leader runs under a seccomp filter (mode 2). */
  seccomp: boolean;
}

/** The fields of /proc/PID/status that say how privileged a process is. */
export function parseLeaderStatus(text: string): LeaderSecurity {
  const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)\\s*$`, 'm').exec(text)?.[1];
  const bnd = field('CapBnd');
  if (bnd === undefined || !/^[0-9a-f]{1,16}$/i.test(bnd))
    throw new SdError('EINVAL', 'The leader has no readable CapBnd in /proc/PID/status');
  return {
    capBnd: BigInt(`0x${bnd}`),
    noNewPrivs: field('NoNewPrivs') === '1',
    // 1 is strict mode, which no container leader runs in; anything but 0 is treated as a filter.
    seccomp: (field('Seccomp') ?? '0') !== '0',
  };
}

/** The leader's privileges; `pidfd` proves the pid still names the leader after the read. */
export function leaderSecurity(pid: number, pidfd: number): LeaderSecurity {
  const sec = parseLeaderStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!pidfdSendSignal(pidfd, 0)) throw new SdError('ESRCH', `The machine's leader (pid ${pid}) is gone`);
  return sec;
}

/**
 * The first half, while the program still has the host's (or the user
 * namespace's full) capabilities: shrink the bounding set to the
 * leader's, clear the ambient set, and load the container's seccomp filter
 * (it goes in while CAP_SYS_ADMIN is still effective, so it does not need
 * no_new_privs, as sd-nspawn does it; every later step runs under it).
 */
export function confineBeforeUser(p: SpawnProgram, sec: LeaderSecurity): void {
  dropBoundingSet(p, sec.capBnd);
  clearAmbientCapabilities(p);
  if (sec.seccomp) loadFilterStep(p, containerSeccompFilter({ capabilities: sec.capBnd }));
}

/**
 * The second half, after setresuid: root keeps what the bounding set
 * allows, anyone else nothing; the inheritable set is emptied (it is not
 * limited by the bounding set and would otherwise pass capabilities to a
 * program with file capabilities); then no_new_privs when the leader has it.
 */
export function confineAfterUser(p: SpawnProgram, sec: LeaderSecurity, uid: number): void {
  const keep = uid === 0 ? sec.capBnd : 0n;
  setCapabilities(p, { effective: keep, permitted: keep, inheritable: 0n });
  if (sec.noNewPrivs) setNoNewPrivileges(p);
}

/** Every namespace flag setns(pidfd, …) can join. */
export const ALL_NAMESPACES =
  CLONE.NEWUSER | CLONE.NEWNS | CLONE.NEWUTS | CLONE.NEWIPC | CLONE.NEWNET | CLONE.NEWCGROUP | CLONE.NEWPID;

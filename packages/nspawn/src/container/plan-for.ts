import { isatty } from '@sd/sys';
import { defaultConsoleMode } from '../console/console.js';
import { NspawnError } from '../errors.js';
import { NOTIFY_SOCKET_PATH } from '../notify/notify.js';
import { hasPrivateNetwork } from '../settings/network.js';
import type { Settings } from '../settings/settings.js';
import { commandCandidates, DEFAULT_PATH, findInit, resolveInTree, type rootUser } from './exec.js';
import type { ContainerPlan } from './plan.js';
import { formatUuid } from './plan.js';
import { usrSymlinks } from './prepare.js';
import { capabilityMask, defaultSeccompFilter, lastCapability } from './security.js';

/** From settings and what the parent prepared to the plan of the child (plan.ts). */

export interface PlanInputs {
  tree: string;
  staging: string;
  machine: string;
  uuid: string;
  rootFd: number;
  user: ReturnType<typeof rootUser>;
  userNamespace: boolean;
  stubInit: number | undefined;
  stdio?: [number, number, number];
}

export function planFor(settings: Settings, i: PlanInputs): ContainerPlan {
  const { user } = i;
  let paths: string[];
  let argv: string[];
  if (settings.boot) {
    const init = findInit(i.rootFd);
    paths = [init];
    argv = [init, ...settings.parameters];
  } else if (settings.parameters.length) {
    paths = commandCandidates(settings.parameters[0]!);
    argv = [...settings.parameters];
  } else {
    // No command: the user's login shell, as systemd-nspawn does.
    const shell = user.shell || '/bin/sh';
    paths = [shell, '/bin/bash', '/bin/sh'];
    argv = [`-${shell.split('/').pop()}`];
  }
  if (i.stubInit !== undefined) {
    if (settings.boot) throw new NspawnError('EINVAL', '--boot and --as-pid2 may not be combined.');
    // The stub execs one path: find it in the tree now.
    paths = [resolveInTree(i.rootFd, paths)];
  }
  const term = process.env.TERM && isatty(1) ? process.env.TERM : 'vt220';
  const env = [
    `PATH=${DEFAULT_PATH}`,
    'container=systemd-nspawn',
    `container_uuid=${formatUuid(i.uuid)}`,
    `TERM=${term}`,
    `HOME=${user.home}`,
    `USER=${user.name}`,
    `LOGNAME=${user.name}`,
    `SHELL=${user.shell}`,
    `NOTIFY_SOCKET=${NOTIFY_SOCKET_PATH}`,
    ...settings.environment,
  ];
  return {
    staging: i.staging,
    volatile: settings.volatile,
    usrSymlinks: settings.volatile === 'yes' ? usrSymlinks(i.tree) : [],
    mounts: { root: -1, devices: {} },
    userNamespace: i.userNamespace,
    networkNamespace: hasPrivateNetwork(settings),
    cgroupNamespace: true,
    hostname: settings.hostname ?? i.machine,
    containerUuid: i.uuid,
    exec: i.stubInit === undefined ? { paths, argv, env } : { paths, argv, env, stubInit: i.stubInit },
    workingDirectory: settings.chdir ?? (settings.boot ? '/' : user.home),
    workingDirectoryRequired: settings.chdir !== undefined,
    uid: user.uid,
    gid: user.gid,
    groups: user.groups,
    consoleAsStdio: defaultConsoleMode(settings.console) !== 'pipe',
    stdio: i.stdio,
    keepCapabilities: capabilityMask(settings),
    lastCap: lastCapability(),
    noNewPrivileges: settings.noNewPrivileges,
    seccomp: defaultSeccompFilter(settings),
  };
}

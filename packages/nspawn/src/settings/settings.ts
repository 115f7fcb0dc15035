/**
 * One model of a container's settings, fed by the command line (argv.ts)
 * and, later, by .nspawn files and OCI bundles. Field names follow
 * systemd-nspawn's options.
 */

export type ConsoleMode = 'interactive' | 'read-only' | 'passive' | 'pipe' | 'autopipe';
export type VolatileMode = 'no' | 'yes' | 'state' | 'overlay';
export const RESOLV_CONF_MODES = [
  'off',
  'copy-host',
  'copy-static',
  'copy-uplink',
  'copy-stub',
  'replace-host',
  'replace-static',
  'replace-uplink',
  'replace-stub',
  'bind-host',
  'bind-static',
  'bind-uplink',
  'bind-stub',
  'delete',
  'auto',
] as const;
export type ResolvConfMode = (typeof RESOLV_CONF_MODES)[number];
export const TIMEZONE_MODES = ['off', 'copy', 'bind', 'symlink', 'delete', 'auto'] as const;
export type TimezoneMode = (typeof TIMEZONE_MODES)[number];

export interface PrivateUsers {
  /** no: host ids; identity: 0..65535 mapped 1:1; pick: a free range; fixed: `shift`. */
  mode: 'no' | 'identity' | 'pick' | 'fixed';
  shift?: number;
  range: number;
}

/** --bind / --bind-ro: a host path (or file) visible inside. */
export interface BindMount {
  source: string;
  destination: string;
  readOnly: boolean;
  /** rbind (default) takes the submounts along; norbind does not. */
  recursive: boolean;
  /**
   * Under a user namespace, map the container's root to the owner of the
   * source (an idmapped mount): `idmap` asks for it (an error where the file
   * system cannot), `noidmap` refuses it (host owners, seen as nobody);
   * unset, it is done where the file system supports it.
   */
  idmap?: boolean;
}

export interface TmpfsMount {
  destination: string;
  options: string;
}

export interface OverlayMount {
  lower: string[];
  /** Host directory for changes; none for --overlay-ro. */
  upper?: string;
  destination: string;
  readOnly: boolean;
}

import { defaultNetworkSettings, type NetworkSettings } from './network.js';

export interface Settings extends NetworkSettings {
  directory?: string;
  image?: string;
  machine?: string;
  hostname?: string;
  uuid?: string;
  user?: string;
  chdir?: string;
  environment: string[];
  boot: boolean;
  asPid2: boolean;
  /** The command line (or, with boot, init's arguments). */
  parameters: string[];
  console?: ConsoleMode;
  quiet: boolean;
  readOnly: boolean;
  volatile: VolatileMode;
  privateUsers: PrivateUsers;
  privateUsersOwnership: 'off' | 'chown' | 'map' | 'auto';
  privateNetwork: boolean;
  register: boolean;
  killSignal?: number;
  /** Capabilities added to / dropped from the default retained set. */
  capabilities: string[];
  dropCapabilities: string[];
  noNewPrivileges: boolean;
  /** --system-call-filter words: `name`, `~name` to deny, `@group` not yet. */
  systemCallFilter: string[];
  resolvConf: ResolvConfMode;
  timezone: TimezoneMode;
  notifyReady: boolean;
  binds: BindMount[];
  tmpfs: TmpfsMount[];
  overlays: OverlayMount[];
  inaccessible: string[];
  /** -x: run on a throwaway snapshot (or overlay) of the tree. */
  ephemeral: boolean;
  /** Create the directory from this tree on first use. */
  template?: string;
  /** --settings=: how .nspawn files are used. */
  settingsMode: 'yes' | 'no' | 'trusted' | 'override';
}

export function defaultSettings(): Settings {
  return {
    environment: [],
    boot: false,
    asPid2: false,
    parameters: [],
    quiet: false,
    readOnly: false,
    volatile: 'no',
    // A user namespace by default (as systemd-nspawn@.service's -U): without one, root inside is
    // the host's root, and the container no security boundary.
    privateUsers: { mode: 'pick', range: 0x10000 },
    privateUsersOwnership: 'auto',
    privateNetwork: false,
    register: true,
    capabilities: [],
    dropCapabilities: [],
    noNewPrivileges: false,
    systemCallFilter: [],
    resolvConf: 'auto',
    timezone: 'auto',
    notifyReady: false,
    binds: [],
    tmpfs: [],
    overlays: [],
    inaccessible: [],
    settingsMode: 'yes',
    ephemeral: false,
    ...defaultNetworkSettings(),
  };
}

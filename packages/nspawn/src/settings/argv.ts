import {
  type OptionDef,
  parseCommandLine,
  parseSignal as parseSignalName,
  refusedOption,
  UsageError,
} from '@sd/basic';
import { parseSystemCallFilter, SdError } from '@sd/sys';
import { NspawnError } from '../errors.js';
import { parseBind, parseInaccessible, parseOverlay, parseTmpfs } from './mounts.js';
import { parseIfname, parsePortSpec, parseVethExtra, parseZone } from './network.js';
import {
  type ConsoleMode,
  defaultSettings,
  RESOLV_CONF_MODES,
  type ResolvConfMode,
  type Settings,
  TIMEZONE_MODES,
  type TimezoneMode,
  type VolatileMode,
} from './settings.js';
import {
  parseBooleanValue,
  parseCapabilityNames,
  parseHostnameValue,
  parseMachineId,
  parsePrivateUsersValue,
} from './values.js';

/**
 * systemd-nspawn's command line on @sd/basic's getopt_long-compatible
 * parser: the same option names, `--opt=value`, `--opt value`, `-Dvalue`,
 * `-D value`, grouped short flags, and option parsing that stops at the
 * first non-option (the command) or `--`.
 */

type Option = OptionDef<Settings>;

export interface ParsedArgs {
  settings: Settings;
  /** The settings the command line named: they win over .nspawn files. */
  explicit: Set<keyof Settings>;
  help: boolean;
  version: boolean;
}

function bool(value: string | undefined, name: string): boolean {
  if (value === undefined) return true;
  const b = parseBooleanValue(value);
  if (b === undefined) throw new NspawnError('EINVAL', `Failed to parse ${name}= argument: ${value}`);
  return b;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], name: string): T {
  if (value !== undefined && (allowed as readonly string[]).includes(value)) return value as T;
  throw new NspawnError(
    'EINVAL',
    `Invalid ${name} value: ${value ?? '(none)'} (expected one of: ${allowed.join(', ')})`,
  );
}

/** A signal as systemd's signal_from_string() reads it (@sd/basic), as an NspawnError when it is not one. */
export function parseSignal(value: string): number {
  try {
    return parseSignalName(value);
  } catch (e) {
    throw new NspawnError('EINVAL', (e as Error).message, { cause: e });
  }
}

function parsePrivateUsers(s: Settings, value: string | undefined): void {
  try {
    s.privateUsers = parsePrivateUsersValue(value ?? 'yes');
  } catch (e) {
    throw new NspawnError('EINVAL', `Failed to parse --private-users= argument: ${(e as Error).message}`);
  }
}

const options: Option[] = [
  { long: 'directory', short: 'D', arg: 'required', apply: (s, v) => (s.directory = v) },
  { long: 'image', short: 'i', arg: 'required', apply: (s, v) => (s.image = v) },
  { long: 'machine', short: 'M', arg: 'required', apply: (s, v) => (s.machine = v) },
  { long: 'hostname', arg: 'required', apply: (s, v) => (s.hostname = parseHostnameValue(v ?? '')) },
  { long: 'uuid', arg: 'required', apply: (s, v) => (s.uuid = parseMachineId(v ?? '')) },
  { long: 'user', short: 'u', arg: 'required', apply: (s, v) => (s.user = v) },
  {
    long: 'chdir',
    arg: 'required',
    apply: (s, v) => {
      if (!v?.startsWith('/'))
        throw new NspawnError('EINVAL', `Working directory ${v} is not an absolute path.`);
      s.chdir = v;
    },
  },
  {
    long: 'setenv',
    short: 'E',
    arg: 'required',
    apply: (s, v) => {
      if (!v) throw new NspawnError('EINVAL', 'Environment assignment is empty.');
      // NAME alone takes the value from our own environment, as systemd-nspawn does.
      const assignment = v.includes('=')
        ? v
        : process.env[v] !== undefined
          ? `${v}=${process.env[v]}`
          : undefined;
      if (!assignment || !/^[A-Za-z_][A-Za-z0-9_]*=/.test(assignment))
        throw new NspawnError('EINVAL', `Environment variable assignment '${v}' is not valid.`);
      const name = assignment.slice(0, assignment.indexOf('=') + 1);
      s.environment = s.environment.filter((e) => !e.startsWith(name)).concat(assignment);
    },
  },
  { long: 'boot', short: 'b', arg: 'none', apply: (s) => (s.boot = true) },
  { long: 'as-pid2', short: 'a', arg: 'none', apply: (s) => (s.asPid2 = true) },
  {
    long: 'console',
    arg: 'required',
    apply: (s, v) =>
      (s.console = oneOf<ConsoleMode>(
        v,
        ['interactive', 'read-only', 'passive', 'pipe', 'autopipe'],
        '--console',
      )),
  },
  { long: 'pipe', short: 'P', arg: 'none', apply: (s) => (s.console = 'pipe') },
  { long: 'quiet', short: 'q', arg: 'none', apply: (s) => (s.quiet = true) },
  { long: 'read-only', arg: 'none', apply: (s) => (s.readOnly = true) },
  { long: 'ephemeral', short: 'x', arg: 'none', apply: (s) => (s.ephemeral = true) },
  {
    long: 'template',
    arg: 'required',
    apply: (s, v) => {
      if (!v?.startsWith('/')) throw new NspawnError('EINVAL', `Template ${v} is not an absolute path`);
      s.template = v;
    },
  },
  {
    long: 'volatile',
    arg: 'optional',
    apply: (s, v) => {
      if (v === undefined) s.volatile = 'yes';
      else if (['state', 'overlay'].includes(v)) s.volatile = v as VolatileMode;
      else s.volatile = bool(v, '--volatile') ? 'yes' : 'no';
    },
  },
  { long: 'private-users', arg: 'optional', apply: (s, v) => parsePrivateUsers(s, v) },
  {
    long: 'private-users-ownership',
    arg: 'required',
    apply: (s, v) =>
      (s.privateUsersOwnership = oneOf(
        v,
        ['off', 'chown', 'map', 'auto'] as const,
        '--private-users-ownership',
      )),
  },
  {
    long: 'private-users-chown',
    arg: 'none',
    apply: (s) => (s.privateUsersOwnership = 'chown'),
  },
  {
    short: 'U',
    arg: 'none',
    apply: (s) => {
      s.privateUsers = { mode: 'pick', range: 0x10000 };
      s.privateUsersOwnership = 'auto';
    },
  },
  { long: 'private-network', arg: 'none', apply: (s) => (s.privateNetwork = true) },
  { long: 'network-veth', short: 'n', arg: 'none', apply: (s) => (s.networkVeth = true) },
  {
    long: 'network-veth-extra',
    arg: 'required',
    apply: (s, v) => s.networkVethExtra.push(parseVethExtra(v)),
  },
  {
    long: 'network-bridge',
    arg: 'required',
    apply: (s, v) => (s.networkBridge = parseIfname(v, '--network-bridge= interface name')),
  },
  { long: 'network-zone', arg: 'required', apply: (s, v) => (s.networkZone = parseZone(v)) },
  {
    long: 'network-interface',
    arg: 'required',
    apply: (s, v) => s.networkInterfaces.push(parseIfname(v, '--network-interface= interface name')),
  },
  {
    long: 'network-macvlan',
    arg: 'required',
    apply: (s, v) => s.networkMacvlan.push(parseIfname(v, '--network-macvlan= interface name')),
  },
  {
    long: 'network-ipvlan',
    arg: 'required',
    apply: (s, v) => s.networkIpvlan.push(parseIfname(v, '--network-ipvlan= interface name')),
  },
  {
    long: 'network-namespace-path',
    arg: 'required',
    apply: (s, v) => {
      if (!v?.startsWith('/'))
        throw new NspawnError('EINVAL', `--network-namespace-path= needs an absolute path: ${v}`);
      s.networkNamespacePath = v;
    },
  },
  { long: 'port', short: 'p', arg: 'required', apply: (s, v) => s.ports.push(parsePortSpec(v)) },
  { long: 'register', arg: 'required', apply: (s, v, n) => (s.register = bool(v, n)) },
  // systemd-nspawn --keep-unit runs the container in the caller's service; ours always makes its own
  // scope, because that scope carries the device policy, so the option is refused rather than ignored.
  refusedOption(
    { long: 'keep-unit' },
    "running in the calling service's unit is not supported (sd-nspawn's own scope holds the device policy)",
  ),
  { long: 'kill-signal', arg: 'required', apply: (s, v) => (s.killSignal = parseSignal(v ?? '')) },
  {
    long: 'capability',
    arg: 'required',
    apply: (s, v) => s.capabilities.push(...parseCapabilityNames(v ?? '')),
  },
  {
    long: 'drop-capability',
    arg: 'required',
    apply: (s, v) => s.dropCapabilities.push(...parseCapabilityNames(v ?? '')),
  },
  { long: 'no-new-privileges', arg: 'required', apply: (s, v, n) => (s.noNewPrivileges = bool(v, n)) },
  {
    long: 'system-call-filter',
    arg: 'required',
    apply: (s, v) => {
      try {
        s.systemCallFilter.push(...parseSystemCallFilter(v ?? ''));
      } catch (e) {
        throw new NspawnError('EINVAL', `Invalid --system-call-filter=${v ?? ''}: ${(e as Error).message}`);
      }
    },
  },
  {
    long: 'resolv-conf',
    arg: 'required',
    apply: (s, v) => (s.resolvConf = oneOf<ResolvConfMode>(v, RESOLV_CONF_MODES, '--resolv-conf')),
  },
  {
    long: 'timezone',
    arg: 'required',
    apply: (s, v) => (s.timezone = oneOf<TimezoneMode>(v, TIMEZONE_MODES, '--timezone')),
  },
  { long: 'notify-ready', arg: 'required', apply: (s, v, n) => (s.notifyReady = bool(v, n)) },
  { long: 'bind', arg: 'required', apply: (s, v) => s.binds.push(parseBind(v ?? '', false)) },
  { long: 'bind-ro', arg: 'required', apply: (s, v) => s.binds.push(parseBind(v ?? '', true)) },
  { long: 'tmpfs', arg: 'required', apply: (s, v) => s.tmpfs.push(parseTmpfs(v ?? '')) },
  { long: 'overlay', arg: 'required', apply: (s, v) => s.overlays.push(parseOverlay(v ?? '', false)) },
  { long: 'overlay-ro', arg: 'required', apply: (s, v) => s.overlays.push(parseOverlay(v ?? '', true)) },
  { long: 'inaccessible', arg: 'required', apply: (s, v) => s.inaccessible.push(parseInaccessible(v ?? '')) },
  {
    long: 'settings',
    arg: 'required',
    apply: (s, v) => {
      if (v === 'trusted' || v === 'override') s.settingsMode = v;
      else s.settingsMode = bool(v, '--settings') ? 'yes' : 'no';
    },
  },
];

/** The whole option table, short-only -U included (the option audit goes through every entry). */
export const OPTION_TABLE: readonly Option[] = options;

/** The long options (for tests that sweep every one); -U is short-only. */
export const OPTIONS: ReadonlyArray<Readonly<Pick<Option, 'long' | 'short' | 'arg'>> & { long: string }> =
  options.filter((o): o is Option & { long: string } => o.long !== undefined);

/** Parses sd-nspawn's argv (without the program name). Throws NspawnError on bad input. */
export function parseArgv(argv: readonly string[]): ParsedArgs {
  const plain = defaultSettings();
  const explicit = new Set<keyof Settings>();
  // Every field an option touches (assigns, or pushes to) counts as given on the command line.
  const settings = new Proxy(plain, {
    get(target, key, receiver) {
      explicit.add(key as keyof Settings);
      return Reflect.get(target, key, receiver);
    },
    set(target, key, value, receiver) {
      explicit.add(key as keyof Settings);
      return Reflect.set(target, key, value, receiver);
    },
  });
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(options, argv, settings);
  } catch (e) {
    if (e instanceof UsageError) throw new NspawnError('EINVAL', e.message, { cause: e });
    if (e instanceof SdError && !(e instanceof NspawnError))
      throw new NspawnError(e.code, e.message, { cause: e });
    throw e;
  }
  const parameters = parsed.positionals;
  if (parameters.length) {
    plain.parameters = parameters;
    explicit.add('parameters');
  }
  return { settings: plain, explicit, help: parsed.help, version: parsed.version };
}

export const HELP = `sd-nspawn [OPTIONS...] [PATH] [ARGUMENTS...]

Spawn a command or OS in a light-weight container.

  -h --help                 Show this help
     --version              Print version string
  -q --quiet                Do not show status information
  -D --directory=PATH       Root directory for the container
  -i --image=PATH           Root file system disk image (device node) for the container
  -b --boot                 Boot up full system (i.e. invoke init)
  -a --as-pid2              Maintain a stub init as PID1, invoke binary as PID2
     --chdir=PATH           Set working directory in the container
  -E --setenv=NAME[=VALUE]  Pass an environment variable to PID 1
  -u --user=USER            Run the command under specified user or UID
     --kill-signal=SIGNAL   Select signal to use for shutting down PID 1
     --notify-ready=BOOLEAN Receive notifications from the child init process
  -M --machine=NAME         Set the machine name for the container
     --hostname=NAME        Override the hostname for the container
     --uuid=UUID            Set a specific machine UUID for the container
     --register=BOOLEAN     Register container as machine
     --keep-unit            Not supported: refused (sd-nspawn always makes its own scope)
     --private-users[=UIDBASE[:NUIDS]|yes|pick|identity|no]
                            Run within user namespace, configure UID/GID range
                            (default: pick; 'no' runs without one: root inside
                            is then the host's root, no security boundary)
  -U                        Equivalent to --private-users=pick (the default)
     --private-users-ownership=off|chown|map|auto
                            Adjust ('chown') or map ('map') OS tree ownership
     --private-users-chown  Same as --private-users-ownership=chown
     --private-network      Disable network in container
     --network-interface=INTERFACE
                            Assign an existing network interface to the
                            container
     --network-macvlan=INTERFACE
                            Create a macvlan network interface based on an
                            existing network interface to the container
     --network-ipvlan=INTERFACE
                            Create an ipvlan network interface (not available:
                            this kernel has no IPVLAN)
  -n --network-veth         Add a virtual Ethernet connection between host
                            and container
     --network-veth-extra=HOSTIF[:CONTAINERIF]
                            Add an additional virtual Ethernet link between
                            host and container
     --network-bridge=INTERFACE
                            Add a virtual Ethernet connection to the container
                            and attach it to an existing bridge on the host
     --network-zone=NAME    Similar, but attach the new interface to an
                            automatically managed bridge interface
     --network-namespace-path=PATH
                            Set network namespace to the one represented by
                            the specified kernel namespace file node
  -p --port=[PROTOCOL:]HOSTPORT[:CONTAINERPORT]
                            Expose a container IP port on the host
     --capability=CAP       In addition to the default, retain specified capability
     --drop-capability=CAP  Drop the specified capability from the default set
     --no-new-privileges    Set PR_SET_NO_NEW_PRIVS flag for container payload
     --system-call-filter=LIST|~LIST
                            Permit/prohibit specific system calls
     --read-only            Mount the root directory read-only
     --bind=PATH[:PATH[:OPTIONS]]
                            Bind mount a file or directory from the host into
                            the container
     --bind-ro=PATH[:PATH[:OPTIONS]
                            Similar, but creates a read-only bind mount
     --tmpfs=PATH:[OPTIONS] Mount an empty tmpfs to the specified directory
     --overlay=PATH[:PATH...]:PATH
                            Create an overlay mount from the host to the container
     --overlay-ro=PATH[:PATH...]:PATH
                            Similar, but creates a read-only overlay mount
     --inaccessible=PATH    Over-mount file node with inaccessible node to mask
                            it
     --settings=BOOLEAN|trusted|override
                            Load additional settings from .nspawn file
  -x --ephemeral            Run container with snapshot of root directory, and
                            remove it after exit
     --template=PATH        Initialize root directory from template directory,
                            if missing
     --volatile[=MODE]      Run the system in volatile mode (yes, no, state, overlay)
     --resolv-conf=MODE     Select mode of /etc/resolv.conf initialization
     --timezone=MODE        Select mode of /etc/localtime initialization
     --console=MODE         Select how stdin/stdout/stderr and /dev/console are set up for the container
  -P --pipe                 Equivalent to --console=pipe
`;

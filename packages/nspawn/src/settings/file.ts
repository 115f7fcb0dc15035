import { parseSystemCallFilter } from '@sd/sys';
import { NspawnError } from '../errors.js';
import { parseSignal } from './argv.js';
import { parseBind, parseInaccessible, parseOverlay, parseTmpfs } from './mounts.js';
import { parseIfname, parsePortSpec, parseVethExtra, parseZone } from './network.js';
import {
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
 * .nspawn settings files (systemd.nspawn(5)): [Exec], [Files] and [Network]
 * with systemd's key names, in unit-file syntax. Parsing yields the fields a
 * file sets; merging applies them under the command line and the trust rules.
 */

/** A fatal problem in a settings file: which file, line and key. */
export class SettingsFileError extends NspawnError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly key: string | undefined,
    message: string,
  ) {
    super('EINVAL', `${file}:${line}: ${key ? `${key}=: ` : ''}${message}`);
  }
}

export interface ParsedSettingsFile {
  file: string;
  /** Only the fields the file sets. */
  settings: Partial<Settings>;
  /** Fields set, in file order. */
  keys: Array<keyof Settings>;
  /** The file's key name for each field (for notices). */
  keyNames: Partial<Record<keyof Settings, string>>;
  /** Unknown or unsupported keys and sections, as systemd warns about them. */
  warnings: string[];
}

type Apply = (s: Partial<Settings>, value: string) => void;
interface KeyDef {
  field: keyof Settings;
  apply: Apply;
}

function bool(value: string): boolean {
  const b = parseBooleanValue(value);
  if (b === undefined) throw new Error(`not a boolean: ${value}`);
  return b;
}

/** Shell-like words with single and double quotes and backslash escapes (Parameters=, Environment=). */
export function splitWords(value: string): string[] {
  const words: string[] = [];
  let cur: string | undefined;
  let quote: string | undefined;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
      else if (ch === '\\' && quote === '"' && i + 1 < value.length) cur = (cur ?? '') + value[++i];
      else cur = (cur ?? '') + ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      cur ??= '';
    } else if (ch === '\\' && i + 1 < value.length) cur = (cur ?? '') + value[++i];
    else if (/\s/.test(ch)) {
      if (cur !== undefined) words.push(cur);
      cur = undefined;
    } else cur = (cur ?? '') + ch;
  }
  if (quote) throw new Error('unterminated quote');
  if (cur !== undefined) words.push(cur);
  return words;
}

const list =
  <K extends keyof Settings>(
    field: K,
    parse: (v: string) => Settings[K] extends Array<infer T> ? T[] : never,
  ): Apply =>
  (s, v) => {
    // An empty assignment resets the list, as in unit files.
    const cur = (s[field] as unknown[] | undefined) ?? [];
    (s as Record<string, unknown>)[field] = v === '' ? [] : [...cur, ...parse(v)];
  };

function oneOf<T extends string>(allowed: readonly T[]) {
  return (v: string): T => {
    if ((allowed as readonly string[]).includes(v)) return v as T;
    throw new Error(`expected one of ${allowed.join(', ')}`);
  };
}

/**
 * The keys of each section, made when the first file is parsed: most starts
 * read none, and the table's ~130 objects and closures cost one ~0.2 ms.
 */
let sectionsMade: Record<string, Record<string, KeyDef>> | undefined;
const sections = (): Record<string, Record<string, KeyDef>> =>
  (sectionsMade ??= {
    Exec: {
      Boot: { field: 'boot', apply: (s, v) => (s.boot = bool(v)) },
      ProcessTwo: { field: 'asPid2', apply: (s, v) => (s.asPid2 = bool(v)) },
      Ephemeral: { field: 'ephemeral', apply: (s, v) => (s.ephemeral = bool(v)) },
      Parameters: { field: 'parameters', apply: (s, v) => (s.parameters = splitWords(v)) },
      Environment: {
        field: 'environment',
        apply: list('environment', (v) =>
          splitWords(v).map((w) => {
            if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(w)) throw new Error(`not an assignment: ${w}`);
            return w;
          }),
        ),
      },
      User: { field: 'user', apply: (s, v) => (s.user = v) },
      WorkingDirectory: {
        field: 'chdir',
        apply: (s, v) => {
          if (!v.startsWith('/')) throw new Error('not an absolute path');
          s.chdir = v;
        },
      },
      Capability: { field: 'capabilities', apply: list('capabilities', parseCapabilityNames) },
      DropCapability: { field: 'dropCapabilities', apply: list('dropCapabilities', parseCapabilityNames) },
      NoNewPrivileges: { field: 'noNewPrivileges', apply: (s, v) => (s.noNewPrivileges = bool(v)) },
      KillSignal: { field: 'killSignal', apply: (s, v) => (s.killSignal = parseSignal(v)) },
      MachineID: { field: 'uuid', apply: (s, v) => (s.uuid = parseMachineId(v)) },
      Hostname: { field: 'hostname', apply: (s, v) => (s.hostname = parseHostnameValue(v)) },
      PrivateUsers: { field: 'privateUsers', apply: (s, v) => (s.privateUsers = parsePrivateUsersValue(v)) },
      NotifyReady: { field: 'notifyReady', apply: (s, v) => (s.notifyReady = bool(v)) },
      SystemCallFilter: {
        field: 'systemCallFilter',
        apply: list('systemCallFilter', parseSystemCallFilter),
      },
      ResolvConf: {
        field: 'resolvConf',
        apply: (s, v) => (s.resolvConf = oneOf<ResolvConfMode>(RESOLV_CONF_MODES)(v)),
      },
      Timezone: {
        field: 'timezone',
        apply: (s, v) => (s.timezone = oneOf<TimezoneMode>(TIMEZONE_MODES)(v)),
      },
    },
    Files: {
      ReadOnly: { field: 'readOnly', apply: (s, v) => (s.readOnly = bool(v)) },
      Template: {
        field: 'template',
        apply: (s, v) => {
          if (!v.startsWith('/')) throw new Error('not an absolute path');
          s.template = v;
        },
      },
      Volatile: {
        field: 'volatile',
        apply: (s, v) => {
          s.volatile = ['state', 'overlay'].includes(v) ? (v as VolatileMode) : bool(v) ? 'yes' : 'no';
        },
      },
      Bind: { field: 'binds', apply: list('binds', (v) => [parseBind(v, false)]) },
      BindReadOnly: { field: 'binds', apply: list('binds', (v) => [parseBind(v, true)]) },
      TemporaryFileSystem: { field: 'tmpfs', apply: list('tmpfs', (v) => [parseTmpfs(v)]) },
      Inaccessible: { field: 'inaccessible', apply: list('inaccessible', (v) => [parseInaccessible(v)]) },
      Overlay: { field: 'overlays', apply: list('overlays', (v) => [parseOverlay(v, false)]) },
      OverlayReadOnly: { field: 'overlays', apply: list('overlays', (v) => [parseOverlay(v, true)]) },
      PrivateUsersOwnership: {
        field: 'privateUsersOwnership',
        apply: (s, v) => (s.privateUsersOwnership = oneOf(['off', 'chown', 'map', 'auto'] as const)(v)),
      },
      PrivateUsersChown: {
        field: 'privateUsersOwnership',
        apply: (s, v) => (s.privateUsersOwnership = bool(v) ? 'chown' : 'off'),
      },
    },
    Network: {
      Private: { field: 'privateNetwork', apply: (s, v) => (s.privateNetwork = bool(v)) },
      VirtualEthernet: { field: 'networkVeth', apply: (s, v) => (s.networkVeth = bool(v)) },
      VirtualEthernetExtra: {
        field: 'networkVethExtra',
        apply: list('networkVethExtra', (v) => [parseVethExtra(v)]),
      },
      Interface: {
        field: 'networkInterfaces',
        apply: list('networkInterfaces', (v) => splitWords(v).map((w) => parseIfname(w, 'interface name'))),
      },
      MACVLAN: {
        field: 'networkMacvlan',
        apply: list('networkMacvlan', (v) => splitWords(v).map((w) => parseIfname(w, 'interface name'))),
      },
      IPVLAN: {
        field: 'networkIpvlan',
        apply: list('networkIpvlan', (v) => splitWords(v).map((w) => parseIfname(w, 'interface name'))),
      },
      Bridge: { field: 'networkBridge', apply: (s, v) => (s.networkBridge = parseIfname(v, 'bridge name')) },
      Zone: { field: 'networkZone', apply: (s, v) => (s.networkZone = parseZone(v)) },
      Port: { field: 'ports', apply: list('ports', (v) => [parsePortSpec(v)]) },
    },
  });

/** Keys systemd knows that sd-nspawn does not implement yet: warned about, not fatal. */
const KNOWN_UNSUPPORTED: Record<string, string[]> = {
  Exec: [
    'Personality',
    'PivotRoot',
    'AmbientCapability',
    'OOMScoreAdjust',
    'CPUAffinity',
    'LinkJournal',
    'SuppressSync',
  ],
  Files: ['BindUser'],
  Network: [],
};

/**
 * Settings an untrusted file (one found next to the tree or image) may not
 * change: what systemd-nspawn 252 ignores in such files (Capability=,
 * MachineID=, Bind=, BindReadOnly=, TemporaryFileSystem=, Inaccessible=,
 * Overlay=, OverlayReadOnly=, the [Network] settings, PrivateUsers=,
 * PrivateUsersOwnership=/PrivateUsersChown=), plus every key of ours that
 * systemd lacks (Template=, which copies a host directory). Two more follow
 * systemd's finer rules in mergeSettingsFile(): SystemCallFilter= only when
 * it allows nothing, and DropCapability= only ever adds drops.
 */
export const PRIVILEGED_FIELDS: ReadonlySet<keyof Settings> = new Set<keyof Settings>([
  'capabilities',
  'uuid',
  'binds',
  'tmpfs',
  'overlays',
  'inaccessible',
  'privateNetwork',
  'privateUsers',
  'privateUsersOwnership',
  // Network settings of an untrusted file are ignored, as systemd-nspawn ignores them.
  'networkVeth',
  'networkVethExtra',
  'networkBridge',
  'networkZone',
  'networkInterfaces',
  'networkMacvlan',
  'networkIpvlan',
  'ports',
  'template',
]);

/** A SystemCallFilter= list that only denies (every word starts with ~): what an untrusted file may set. */
function onlyDenies(words: readonly string[]): boolean {
  return words.every((w) => w.startsWith('~'));
}

const MAX_SIZE = 1 << 20;

export function parseSettingsFile(text: string, file: string): ParsedSettingsFile {
  if (text.length > MAX_SIZE)
    throw new SettingsFileError(file, 0, undefined, `file is larger than ${MAX_SIZE} bytes`);
  const out: ParsedSettingsFile = { file, settings: {}, keys: [], keyNames: {}, warnings: [] };
  let section: string | undefined;
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const lineNo = n + 1;
    let line = lines[n]!.replace(/\r$/, '');
    // Continuation lines end in a backslash.
    while (line.endsWith('\\') && n + 1 < lines.length)
      line = `${line.slice(0, -1)} ${lines[++n]!.replace(/\r$/, '')}`;
    const t = line.trim();
    if (t === '' || t.startsWith('#') || t.startsWith(';')) continue;
    if (t.startsWith('[')) {
      if (!t.endsWith(']'))
        throw new SettingsFileError(file, lineNo, undefined, `invalid section header '${t}'`);
      section = t.slice(1, -1);
      if (!(section in sections()))
        out.warnings.push(`${file}:${lineNo}: Unknown section '${section}'. Ignoring.`);
      continue;
    }
    const eq = t.indexOf('=');
    if (eq <= 0) throw new SettingsFileError(file, lineNo, undefined, `missing '=' in '${t}'`);
    const key = t.slice(0, eq).trim();
    const value = t.slice(eq + 1).trim();
    if (section === undefined)
      throw new SettingsFileError(file, lineNo, key, 'assignment outside of any section');
    const defs = sections()[section];
    if (!defs) continue;
    const def = defs[key];
    if (!def) {
      const known = KNOWN_UNSUPPORTED[section]?.includes(key);
      out.warnings.push(
        known
          ? `${file}:${lineNo}: ${key}= in [${section}] is not supported by sd-nspawn yet, ignoring.`
          : `${file}:${lineNo}: Unknown key name '${key}' in section '${section}', ignoring.`,
      );
      continue;
    }
    try {
      def.apply(out.settings, value);
    } catch (e) {
      throw new SettingsFileError(file, lineNo, key, `invalid value '${value}': ${(e as Error).message}`);
    }
    if (!out.keys.includes(def.field)) out.keys.push(def.field);
    out.keyNames[def.field] ??= key;
  }
  return out;
}

export interface MergeResult {
  settings: Settings;
  /** "Ignoring … file … is not trusted." and similar notices, for the CLI to print. */
  notices: string[];
}

/**
 * Applies a parsed file under the command line: fields the command line
 * named win (unless mode is 'override'), privileged fields of an untrusted
 * file are ignored with a notice.
 */
export function mergeSettingsFile(
  base: Settings,
  explicit: ReadonlySet<keyof Settings>,
  parsed: ParsedSettingsFile,
  trusted: boolean,
  mode: Settings['settingsMode'] = base.settingsMode,
): MergeResult {
  const settings: Settings = { ...defaultSettings(), ...base };
  const notices = [...parsed.warnings];
  const ignore = (field: keyof Settings) =>
    notices.push(`Ignoring ${parsed.keyNames[field] ?? field}= setting, file ${parsed.file} is not trusted.`);
  for (const field of parsed.keys) {
    if (explicit.has(field) && mode !== 'override') continue;
    if (!trusted && PRIVILEGED_FIELDS.has(field)) {
      ignore(field);
      continue;
    }
    if (field === 'systemCallFilter' && !trusted && !onlyDenies(parsed.settings.systemCallFilter ?? [])) {
      ignore(field);
      continue;
    }
    if (field === 'dropCapabilities') {
      // A file adds drops to the command line's, never replaces them (systemd
      // masks the retained set with the file's drops): --settings=override
      // must not bring back a capability the command line dropped.
      const drops = [...settings.dropCapabilities];
      for (const c of parsed.settings.dropCapabilities ?? []) if (!drops.includes(c)) drops.push(c);
      settings.dropCapabilities = drops;
      continue;
    }
    (settings as unknown as Record<string, unknown>)[field] = parsed.settings[field];
  }
  return { settings, notices };
}

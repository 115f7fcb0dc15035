import {
  type ArgKind,
  flagOption,
  formatHelp,
  type OptionDef,
  type OptionSpec,
  type OutputFlags,
  outputOptions,
  parseBoolean,
  parseCommandLine,
  refusedOption,
  refusedTransportOptions,
  UsageError,
  valueOption,
} from '@sd/basic';
import { TRANSFER_VERBS, type TransferIo, type TransferOptions, transferVerb } from '@sd/machined';
import { parseExportFormat, parseVerify } from '../types.js';

/**
 * importctl's command line: systemd's importctl(1) option set and verbs on
 * @sd/basic's option table. What this importd cannot do (other image
 * classes, a user-scope manager, remote hosts, OCI pulls, import1's
 * ListImages) is refused by name, never
 * parsed and then ignored.
 */

export interface ImportctlValues {
  output: OutputFlags;
  readOnly: boolean;
  quiet: boolean;
  verify: string;
  format: string;
  force: boolean;
  /** pull-tar/pull-raw: keep the pristine download (systemd's default for machine images: yes). */
  keepDownload: boolean;
}

export const defaultImportctlValues = (): ImportctlValues => ({
  output: { json: 'off', legend: true, pager: true },
  readOnly: false,
  quiet: false,
  verify: '',
  format: '',
  force: false,
  keepDownload: true,
});

const asUsage = <T>(name: string, value: string, f: () => T): T => {
  try {
    return f();
  } catch (e) {
    throw new UsageError(`${name}=${value}: ${(e as Error).message}`, { cause: e });
  }
};

const OTHER_CLASS = 'only machine images are supported by this sd-importd';
type Def = OptionDef<ImportctlValues>;
const flag = (spec: OptionSpec, set: (v: ImportctlValues) => void): Def => flagOption(spec, set);
const refused = (spec: OptionSpec & { arg?: ArgKind }, why: string): Def => refusedOption(spec, why);

export const IMPORTCTL_OPTIONS: Def[] = [
  ...outputOptions<ImportctlValues>(),
  flag({ short: 'j', help: 'Same as --json=pretty on a terminal, --json=short otherwise' }, (v) => {
    v.output.json = process.stdout.isTTY ? 'pretty' : 'short';
  }),
  // Nothing here ever asks for a password: the option's effect is the only behaviour there is.
  flag(
    { long: 'no-ask-password', help: 'Do not ask for system passwords (none is ever asked for)' },
    () => {},
  ),
  flag({ long: 'read-only', help: 'Create a read-only image' }, (v) => {
    v.readOnly = true;
  }),
  flag({ long: 'quiet', short: 'q', help: 'Suppress output' }, (v) => {
    v.quiet = true;
  }),
  valueOption(
    {
      long: 'verify',
      value: 'MODE',
      help: 'Verification mode for downloaded images (no, checksum, signature)',
    },
    (v, a, n) => {
      v.verify = asUsage(n, a, () => parseVerify(a));
    },
  ),
  valueOption(
    {
      long: 'format',
      value: 'FORMAT',
      help: 'Compression of exported images (uncompressed, xz, gzip, bzip2, zstd)',
    },
    (v, a, n) => {
      v.format = asUsage(n, a, () => parseExportFormat(a));
    },
  ),
  flag({ long: 'force', help: 'Install the image even if one by that name exists' }, (v) => {
    v.force = true;
  }),
  valueOption<ImportctlValues>(
    { long: 'class', value: 'TYPE', help: 'Install as the specified TYPE (only machine)' },
    (_v, a, n) => {
      if (a === 'machine') return;
      if (['portable', 'sysext', 'confext'].includes(a)) throw new UsageError(`${n}=${a}: ${OTHER_CLASS}`);
      throw new UsageError(`Failed to parse ${n}= parameter: ${a}`);
    },
  ),
  flag({ short: 'm', help: 'Same as --class=machine' }, () => {}),
  refused({ short: 'P' }, OTHER_CLASS),
  refused({ short: 'S' }, OTHER_CLASS),
  refused({ short: 'C' }, OTHER_CLASS),
  valueOption<ImportctlValues>(
    {
      long: 'keep-download',
      value: 'BOOL',
      help: 'Keep a pristine read-only copy of the download next to the image (default: yes)',
    },
    (v, a, n) => {
      v.keepDownload = asUsage(n, a, () => parseBoolean(a, `${n}=`));
    },
  ),
  flag({ short: 'N', help: 'Same as --keep-download=no' }, (v) => {
    v.keepDownload = false;
  }),
  flag({ long: 'system', help: 'Connect to the system image manager (the default)' }, () => {}),
  refused({ long: 'user' }, 'a per-user image manager is not supported'),
  ...refusedTransportOptions<ImportctlValues>('importctl'),
];

export const IMPORTCTL_HELP = formatHelp(
  {
    usage: ['importctl [OPTIONS...] COMMAND ...'],
    summary: 'Download, import or export disk images (through sd-importd, org.freedesktop.import1).',
    sections: [
      {
        title: 'Commands',
        lines: [
          'pull-tar URL [NAME]         Download a TAR container image',
          'pull-raw URL [NAME]         Download a RAW container or VM image',
          'import-tar FILE [NAME]      Import a local TAR container image',
          'import-raw FILE [NAME]      Import a local RAW container or VM image',
          'import-fs DIRECTORY [NAME]  Import a local directory container image',
          'export-tar NAME [FILE]      Export a TAR container image locally',
          'export-raw NAME [FILE]      Export a RAW container or VM image locally',
          'list-transfers              Show list of transfers in progress',
          'cancel-transfer [ID...]     Cancel a transfer',
          'pull-oci, list-images       Not supported by this importctl (they say so)',
        ],
      },
    ],
  },
  IMPORTCTL_OPTIONS as never,
);

/** systemd's verbs that this importd does not serve, each with why. */
const REFUSED_VERBS: Record<string, string> = {
  'pull-oci': 'pulling OCI images is not supported by this sd-importd',
  'list-images': 'import1 has no ListImages here; machinectl list-images lists the machine images',
};

export interface ParsedImportctl {
  values: ImportctlValues;
  help: boolean;
  version: boolean;
  verb: string;
  args: string[];
}

/** Parses importctl's argv (options may follow the verb, as getopt permutes). Throws UsageError. */
export function parseImportctl(argv: readonly string[]): ParsedImportctl {
  const values = defaultImportctlValues();
  const p = parseCommandLine(IMPORTCTL_OPTIONS, argv, values, { permute: true });
  // systemd: --json turns the legend off.
  if (values.output.json !== 'off') values.output.legend = false;
  const [verb = 'list-transfers', ...args] = p.positionals;
  if (!p.help && !p.version) {
    const why = REFUSED_VERBS[verb];
    if (why) throw new UsageError(`${verb}: ${why}`);
    const arity = TRANSFER_VERBS[verb];
    if (!arity) throw new UsageError(`Unknown command verb '${verb}'.`);
    if (args.length < arity[0]) throw new UsageError('Too few arguments.');
    if (args.length > arity[1]) throw new UsageError('Too many arguments.');
  }
  return { values, help: p.help, version: p.version, verb, args };
}

export function transferOptions(v: ImportctlValues): TransferOptions {
  return {
    force: v.force,
    readOnly: v.readOnly,
    verify: v.verify,
    format: v.format,
    keepDownload: v.keepDownload,
    quiet: v.quiet,
    noLegend: !v.output.legend,
    json: v.output.json,
  };
}

/** importctl as a function: the exit status; prints through `io`. */
export async function importctl(argv: readonly string[], io: TransferIo, version: string): Promise<number> {
  const p = parseImportctl(argv);
  if (p.help) {
    io.out(IMPORTCTL_HELP);
    return 0;
  }
  if (p.version) {
    io.out(`${version}\n`);
    return 0;
  }
  return transferVerb(p.verb, p.args, transferOptions(p.values), io);
}

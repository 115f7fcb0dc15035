import { formatHelp, type OptionDef, parseCommandLine, UsageError } from '@sd/basic';

/** sd-importd's command line on @sd/basic's option table. */

export interface ImportdValues {
  busAddress?: string;
  root?: string;
  keyrings: string[];
}

export const IMPORTD_OPTIONS: OptionDef<ImportdValues>[] = [
  {
    long: 'bus-address',
    arg: 'required',
    value: 'ADDR',
    help: 'Bus to serve on (default: $DBUS_SYSTEM_BUS_ADDRESS or the system bus)',
    apply: (v, a) => {
      v.busAddress = a;
    },
  },
  {
    long: 'root',
    arg: 'required',
    value: 'DIR',
    help: 'Prefix for the image pool paths (images in DIR/var/lib/machines)',
    apply: (v, a) => {
      v.root = a;
    },
  },
  {
    long: 'keyring',
    arg: 'required',
    value: 'FILE',
    help: 'Keyring for --verify=signature, may be repeated (default /etc/systemd/import-pubring.gpg, then /usr/lib/systemd/import-pubring.gpg)',
    apply: (v, a) => {
      v.keyrings.push(a as string);
    },
  },
];

export const IMPORTD_HELP = formatHelp(
  {
    usage: ['sd-importd [OPTIONS...]'],
    summary: 'VM and container image import and export service (org.freedesktop.import1).',
  },
  IMPORTD_OPTIONS as never,
);

export interface ParsedImportd {
  values: ImportdValues;
  help: boolean;
  version: boolean;
}

/** Parses sd-importd's argv; it takes no positional arguments. Throws UsageError. */
export function parseImportd(argv: readonly string[]): ParsedImportd {
  const values: ImportdValues = { keyrings: [] };
  const p = parseCommandLine(IMPORTD_OPTIONS, argv, values);
  if (p.positionals.length && !p.help && !p.version)
    throw new UsageError(`This program takes no arguments: ${p.positionals[0]}`);
  return { values, help: p.help, version: p.version };
}

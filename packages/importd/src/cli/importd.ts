import {
  busAddressOption,
  type DaemonArgs,
  formatHelp,
  type OptionDef,
  parseDaemonCommandLine,
  storeOption,
  valueOption,
} from '@sd/basic';

/** sd-importd's command line on @sd/basic's option table. */

export interface ImportdValues {
  busAddress?: string;
  root?: string;
  keyrings: string[];
}

export const IMPORTD_OPTIONS: OptionDef<ImportdValues>[] = [
  busAddressOption(),
  storeOption(
    { long: 'root', value: 'DIR', help: 'Prefix for the image pool paths (images in DIR/var/lib/machines)' },
    'root',
  ),
  valueOption(
    {
      long: 'keyring',
      value: 'FILE',
      help: 'Keyring for --verify=signature, may be repeated (default /etc/systemd/import-pubring.gpg, then /usr/lib/systemd/import-pubring.gpg)',
    },
    (v, a) => {
      v.keyrings.push(a);
    },
  ),
];

export const IMPORTD_HELP = formatHelp(
  {
    usage: ['sd-importd [OPTIONS...]'],
    summary: 'VM and container image import and export service (org.freedesktop.import1).',
  },
  IMPORTD_OPTIONS as never,
);

/** Parses sd-importd's argv; it takes no positional arguments. Throws UsageError. */
export const parseImportd = (argv: readonly string[]): DaemonArgs<ImportdValues> =>
  parseDaemonCommandLine(IMPORTD_OPTIONS, argv, { keyrings: [] });

#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { packageVersion } from '@sd/basic';
import { TRANSFER_VERBS, transferVerb } from '@sd/machined';
import { parseExportFormat, parseVerify } from './types.js';

// importctl: the transfer verbs of sd-importd (the same client as machinectl's); the only place that prints or exits.

const HELP = `importctl [OPTIONS...] COMMAND ...

Download, import or export disk images (through sd-importd, org.freedesktop.import1).

Commands:
  pull-tar URL [NAME]         Download a TAR container image
  pull-raw URL [NAME]         Download a RAW container or VM image
  import-tar FILE [NAME]      Import a local TAR container image
  import-raw FILE [NAME]      Import a local RAW container or VM image
  import-fs DIRECTORY [NAME]  Import a local directory container image
  export-tar NAME [FILE]      Export a TAR container image locally
  export-raw NAME [FILE]      Export a RAW container or VM image locally
  list-transfers              Show list of transfers in progress
  cancel-transfer [ID...]     Cancel a transfer

Options:
  -h --help                   Show this help
     --version                Show package version
     --no-legend              Do not show the headers and footers
     --read-only              Create a read-only image
  -q --quiet                  Suppress output
     --verify=MODE            Verification mode for downloaded images (no, checksum, signature)
     --format=FORMAT          Compression of exported images (uncompressed, xz, gzip, bzip2, zstd)
     --force                  Install the image even if one by that name exists
     --keep-download          Accepted for systemd's compatibility; downloads are imported as they arrive
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
      'no-legend': { type: 'boolean' },
      'read-only': { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
      verify: { type: 'string' },
      format: { type: 'string' },
      force: { type: 'boolean' },
      'keep-download': { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${packageVersion(import.meta.url, '@sd/importd')}\n`);
    return 0;
  }
  const [verb = 'list-transfers', ...args] = positionals;
  const arity = TRANSFER_VERBS[verb];
  if (!arity) throw new Error(`Unknown command verb '${verb}'.`);
  if (args.length < arity[0]) throw new Error('Too few arguments.');
  if (args.length > arity[1]) throw new Error('Too many arguments.');
  // Checked here too, so a typo fails before anything is sent.
  const verify = values.verify === undefined ? '' : parseVerify(values.verify);
  const format = values.format === undefined ? '' : parseExportFormat(values.format);
  return transferVerb(
    verb,
    args,
    {
      force: values.force ?? false,
      readOnly: values['read-only'] ?? false,
      verify,
      format,
      keepDownload: values['keep-download'] ?? false,
      quiet: values.quiet ?? false,
      noLegend: values['no-legend'] ?? false,
    },
    {
      out: (s) => void process.stdout.write(s),
      err: (s) => void process.stderr.write(s),
      isTTY: process.stderr.isTTY === true,
    },
  );
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`importctl: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);

#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { packageVersion } from '@sd/basic';
import { Importd } from './daemon/importd.js';

// sd-importd: parse, start the daemon, log, stop on SIGTERM/SIGINT — the only place that prints or exits.

const HELP = `sd-importd [OPTIONS...]

VM and container image import and export service (org.freedesktop.import1).

  -h --help              Show this help
     --version           Show the package version
     --bus-address=ADDR  Bus to serve on (default: $DBUS_SYSTEM_BUS_ADDRESS or the system bus)
     --root=DIR          Prefix for the image pool paths (images in DIR/var/lib/machines)
     --keyring=FILE      Keyring for --verify=signature (default /etc/systemd/import-pubring.gpg,
                         then /usr/lib/systemd/import-pubring.gpg)
`;

const log = (msg: string) => process.stderr.write(`sd-importd: ${msg}\n`);

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
      'bus-address': { type: 'string' },
      root: { type: 'string' },
      keyring: { type: 'string', multiple: true },
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
  const d = await Importd.start({
    busAddress: values['bus-address'],
    root: values.root,
    keyrings: values.keyring,
    log,
  });
  log(`serving org.freedesktop.import1, pool ${d.pool.poolPath}`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    d.bus.on('error', stop);
    (d.bus as unknown as NodeJS.EventEmitter).on('end', stop);
  });
  await d.stop();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    log(e instanceof Error ? e.message : String(e));
    process.exit(1);
  },
);

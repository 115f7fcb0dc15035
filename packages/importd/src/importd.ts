#!/usr/bin/env node
import { answerHelpOrVersion, packageVersion, runMain } from '@sd/basic';
import { IMPORTD_HELP, parseImportd } from './cli/importd.js';
import { Importd } from './daemon/importd.js';

// sd-importd: parse, start the daemon, log, stop on SIGTERM/SIGINT — the only place that prints or exits.

const log = (msg: string) => process.stderr.write(`sd-importd: ${msg}\n`);

async function main(argv: string[]): Promise<number> {
  const p = parseImportd(argv);
  const { values } = p;
  if (answerHelpOrVersion(p, IMPORTD_HELP, packageVersion(import.meta.url, 'sd-importd'))) return 0;
  const d = await Importd.start({
    busAddress: values.busAddress,
    root: values.root,
    keyrings: values.keyrings.length ? values.keyrings : undefined,
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

runMain('sd-importd', main);

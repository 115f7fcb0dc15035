#!/usr/bin/env node
import { answerHelpOrVersion, packageVersion, parseDaemonCommandLine, runMain } from '@sd/basic';
import {
  MACHINED_HELP as HELP,
  MACHINED_OPTIONS as OPTIONS,
  type MachinedValues as Values,
} from './daemon/cli-options.js';
import { Machined } from './daemon/daemon.js';
import { defaultPaths } from './paths.js';

// sd-machined: parse, start the daemon, log, exit on SIGTERM/SIGINT — the only place that prints or exits.

const log = (msg: string) => process.stderr.write(`sd-machined: ${msg}\n`);
const describe = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function main(argv: string[]): Promise<number> {
  const p = parseDaemonCommandLine(OPTIONS, argv, {} as Values);
  const values = p.values;
  if (answerHelpOrVersion(p, HELP, packageVersion(import.meta.url, 'sd-machined'))) return 0;
  const paths = defaultPaths(values.root ?? '/');
  if (values.stateDir) paths.machinesStateDir = values.stateDir;
  const timeout = values.terminateTimeout;
  const daemon = await Machined.start({
    paths,
    root: values.root ?? '/',
    ...(values.nspawn ? { nspawn: values.nspawn } : {}),
    ...(values.busAddress ? { busAddress: values.busAddress } : {}),
    ...(timeout !== undefined ? { terminateTimeoutMs: timeout * 1000 } : {}),
  });
  daemon.on('warning', (m, e) => log(e ? `${m}: ${describe(e)}` : m));
  daemon.on('machineNew', (m) => log(`New machine ${m.name}.`));
  daemon.on('machineRemoved', (m) => log(`Machine ${m.name} terminated.`));
  const loaded = daemon.registry.lastLoad;
  log(
    `State: ${loaded.restored.length + loaded.recovered.length} machines restored` +
      `${loaded.recovered.length ? ` (${loaded.recovered.length} found again by their scope)` : ''}, ` +
      `${loaded.skipped.length} skipped, ${loaded.ended.length} ended while away.`,
  );
  for (const { file, reason } of loaded.skipped)
    log(`Skipped state file '${file}': ${reason} (left in place).`);
  log(
    `Serving org.freedesktop.machine1 (${daemon.registry.list().length} machines from ${paths.machinesStateDir}).`,
  );
  return new Promise<number>((resolve) => {
    const stop = () => {
      daemon.stop().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    daemon.on('disconnected', (e) => {
      log(`Lost the bus connection${e ? `: ${describe(e)}` : ''}.`);
      daemon.stop().finally(() => resolve(1));
    });
  });
}

runMain('sd-machined', main);

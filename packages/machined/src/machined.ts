#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SdError } from '@sd/sys';
import { Machined } from './daemon/daemon.js';
import { defaultPaths } from './paths.js';

// sd-machined: parse, start the daemon, log, exit on SIGTERM/SIGINT — the only place that prints or exits.

const HELP = `sd-machined [OPTIONS...]

Manage registrations of local VMs and containers (org.freedesktop.machine1).

  -h --help              Show this help
     --version           Show the package version
     --bus-address=ADDR  Bus to serve on (default: $DBUS_SYSTEM_BUS_ADDRESS or the system bus)
     --root=DIR          Prefix for every path (state in DIR/run/systemd/machines, images in DIR/var/lib/machines)
     --state-dir=DIR     Where machine state files go (default /run/systemd/machines)
     --terminate-timeout=SEC  Time between SIGTERM and SIGKILL on terminate (default 90)
     --nspawn=PATH       The sd-nspawn that machinectl start runs (default: sd-nspawn in $PATH)
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    name: string;
    version: string;
  };
  return `${pkg.name} ${pkg.version}`;
}

const log = (msg: string) => process.stderr.write(`sd-machined: ${msg}\n`);
const describe = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
      'bus-address': { type: 'string' },
      root: { type: 'string' },
      'state-dir': { type: 'string' },
      'terminate-timeout': { type: 'string' },
      nspawn: { type: 'string' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const paths = defaultPaths(values.root ?? '/');
  if (values['state-dir']) paths.machinesStateDir = values['state-dir'];
  const timeout = values['terminate-timeout'] === undefined ? undefined : Number(values['terminate-timeout']);
  if (timeout !== undefined && !(timeout >= 0))
    throw new SdError('EINVAL', `Invalid --terminate-timeout: ${values['terminate-timeout']}`);
  const daemon = await Machined.start({
    paths,
    root: values.root ?? '/',
    ...(values.nspawn ? { nspawn: values.nspawn } : {}),
    ...(values['bus-address'] ? { busAddress: values['bus-address'] } : {}),
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    log(e instanceof SdError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);

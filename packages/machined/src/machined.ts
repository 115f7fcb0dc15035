#!/usr/bin/env node
import {
  formatHelp,
  type OptionDef,
  packageVersion,
  parseCommandLine,
  parseTimespan,
  runMain,
  UsageError,
} from '@sd/basic';
import { Machined } from './daemon/daemon.js';
import { defaultPaths } from './paths.js';

// sd-machined: parse, start the daemon, log, exit on SIGTERM/SIGINT — the only place that prints or exits.

interface Values {
  busAddress?: string;
  root?: string;
  stateDir?: string;
  /** Seconds between SIGTERM and SIGKILL on terminate. */
  terminateTimeout?: number;
  nspawn?: string;
}

const OPTIONS: OptionDef<Values>[] = [
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
    help: 'Prefix for every path (state in DIR/run/systemd/machines, images in DIR/var/lib/machines)',
    apply: (v, a) => {
      v.root = a;
    },
  },
  {
    long: 'state-dir',
    arg: 'required',
    value: 'DIR',
    help: 'Where machine state files go (default /run/systemd/machines)',
    apply: (v, a) => {
      v.stateDir = a;
    },
  },
  {
    long: 'terminate-timeout',
    arg: 'required',
    value: 'TIME',
    help: 'Time between SIGTERM and SIGKILL on terminate (default 90s)',
    apply: (v, a) => {
      v.terminateTimeout = Number(parseTimespan(a ?? '', '--terminate-timeout=')) / 1e6;
    },
  },
  {
    long: 'nspawn',
    arg: 'required',
    value: 'PATH',
    help: 'The sd-nspawn that machinectl start runs (default: sd-nspawn in $PATH)',
    apply: (v, a) => {
      v.nspawn = a;
    },
  },
];

const HELP = formatHelp(
  {
    usage: ['sd-machined [OPTIONS...]'],
    summary: 'Manage registrations of local VMs and containers (org.freedesktop.machine1).',
  },
  OPTIONS as never,
);

const log = (msg: string) => process.stderr.write(`sd-machined: ${msg}\n`);
const describe = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function main(argv: string[]): Promise<number> {
  const values: Values = {};
  const p = parseCommandLine(OPTIONS, argv, values);
  if (p.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (p.version) {
    process.stdout.write(`${packageVersion(import.meta.url, 'sd-machined')}\n`);
    return 0;
  }
  if (p.positionals.length) throw new UsageError(`This program takes no arguments: ${p.positionals[0]}`);
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

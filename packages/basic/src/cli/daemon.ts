import {
  type OptionDef,
  type OptionSpec,
  type Parsed,
  parseCommandLine,
  refusedOption,
  UsageError,
  valueOption,
} from './options.js';

/** The options and checks sd's daemons (sd-machined, sd-importd, sd-networkd-veth) and clients share. */

/** --bus-address=ADDR: the bus a daemon serves on. */
export function busAddressOption<C extends { busAddress?: string }>(): OptionDef<C> {
  return valueOption<C>(
    {
      long: 'bus-address',
      value: 'ADDR',
      help: 'Bus to serve on (default: $DBUS_SYSTEM_BUS_ADDRESS or the system bus)',
    },
    (c, a) => {
      c.busAddress = a;
    },
  );
}

/**
 * systemd's -H/--host and -M/--machine (run the command against a remote
 * host or inside a container): refused by name, for a tool that cannot.
 */
export function refusedTransportOptions<C>(tool: string): OptionDef<C>[] {
  return [
    refusedOption<C>(
      { long: 'host', short: 'H', arg: 'required' },
      `operating on a remote host is not supported by this ${tool}`,
    ),
    refusedOption<C>(
      { long: 'machine', short: 'M', arg: 'required' },
      `operating inside a container is not supported by this ${tool}`,
    ),
  ];
}

/** A daemon takes no positional arguments (unless only --help or --version is asked for). */
export function refusePositionals(p: Parsed): void {
  if (p.positionals.length && !p.help && !p.version)
    throw new UsageError(`This program takes no arguments: ${p.positionals[0]}`);
}

export interface DaemonArgs<C> {
  values: C;
  help: boolean;
  version: boolean;
}

/** A daemon's command line: its options into `values`, no positional arguments. Throws UsageError. */
export function parseDaemonCommandLine<C>(
  defs: readonly OptionDef<C>[],
  argv: readonly string[],
  values: C,
): DaemonArgs<C> {
  const p = parseCommandLine(defs, argv, values);
  refusePositionals(p);
  return { values, help: p.help, version: p.version };
}

/** The keys of C whose values are strings (optional ones included). */
type StringKeys<C> = { [K in keyof C]-?: C[K] extends string | undefined ? K : never }[keyof C];

/** An option whose value is kept as it is in `ctx[key]` (--root=DIR, --lock=PATH). */
export function storeOption<C>(spec: OptionSpec, key: StringKeys<C>): OptionDef<C> {
  return valueOption<C>(spec, (c, a) => {
    (c as Record<StringKeys<C>, string>)[key] = a;
  });
}

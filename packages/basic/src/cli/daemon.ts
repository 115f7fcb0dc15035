import { type OptionDef, type Parsed, UsageError, valueOption } from './options.js';

/** The options and checks sd's daemons (sd-machined, sd-importd, sd-networkd-veth) share. */

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

/** A daemon takes no positional arguments (unless only --help or --version is asked for). */
export function refusePositionals(p: Parsed): void {
  if (p.positionals.length && !p.help && !p.version)
    throw new UsageError(`This program takes no arguments: ${p.positionals[0]}`);
}

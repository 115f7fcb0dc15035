import {
  busAddressOption,
  formatHelp,
  type OptionDef,
  parseTimespan,
  storeOption,
  valueOption,
} from '@sd/basic';

/** sd-machined's command line (the table the parser, --help and the option audit share). */

export interface MachinedValues {
  busAddress?: string;
  root?: string;
  stateDir?: string;
  /** Seconds between SIGTERM and SIGKILL on terminate. */
  terminateTimeout?: number;
  nspawn?: string;
}

export const MACHINED_OPTIONS: OptionDef<MachinedValues>[] = [
  busAddressOption(),
  storeOption(
    {
      long: 'root',
      value: 'DIR',
      help: 'Prefix for every path (state in DIR/run/systemd/machines, images in DIR/var/lib/machines)',
    },
    'root',
  ),
  storeOption(
    { long: 'state-dir', value: 'DIR', help: 'Where machine state files go (default /run/systemd/machines)' },
    'stateDir',
  ),
  valueOption(
    {
      long: 'terminate-timeout',
      value: 'TIME',
      help: 'Time between SIGTERM and SIGKILL on terminate (default 90s)',
    },
    (v, a) => {
      v.terminateTimeout = Number(parseTimespan(a, '--terminate-timeout=')) / 1e6;
    },
  ),
  storeOption(
    {
      long: 'nspawn',
      value: 'PATH',
      help: 'The sd-nspawn that machinectl start runs (default: sd-nspawn in $PATH)',
    },
    'nspawn',
  ),
];

export const MACHINED_HELP = formatHelp(
  {
    usage: ['sd-machined [OPTIONS...]'],
    summary: 'Manage registrations of local VMs and containers (org.freedesktop.machine1).',
  },
  MACHINED_OPTIONS as never,
);

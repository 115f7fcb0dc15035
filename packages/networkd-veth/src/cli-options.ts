import {
  type DaemonArgs,
  flagOption,
  formatHelp,
  type OptionDef,
  parseDaemonCommandLine,
  storeOption,
} from '@sd/basic';

/** sd-networkd-veth's command line on @sd/basic's option table. */

export interface NetworkdVethValues {
  once: boolean;
  lock?: string;
}

export const NETWORKD_VETH_OPTIONS: OptionDef<NetworkdVethValues>[] = [
  flagOption({ long: 'once', help: 'Configure the links there are now, then exit' }, (v) => {
    v.once = true;
  }),
  storeOption(
    { long: 'lock', value: 'PATH', help: 'Lock file shared with sd-nspawn for the nftables table' },
    'lock',
  ),
];

export const NETWORKD_VETH_HELP = formatHelp(
  {
    usage: ['sd-networkd-veth [OPTIONS...]'],
    summary: `Configures every ve-* veth and vz-* bridge of the network namespace as
systemd-networkd's 80-container-ve.network and 80-container-vz.network do:
an address from the pool (/28 for ve-, /24 for vz-), the link up, IPv4
forwarding and masquerading. Runs until SIGTERM, configuring new links as
they appear.`,
  },
  NETWORKD_VETH_OPTIONS as never,
);

/** Parses sd-networkd-veth's argv; it takes no positional arguments. Throws UsageError. */
export const parseNetworkdVeth = (argv: readonly string[]): DaemonArgs<NetworkdVethValues> =>
  parseDaemonCommandLine(NETWORKD_VETH_OPTIONS, argv, { once: false });

import {
  flagOption,
  formatHelp,
  type OptionDef,
  parseCommandLine,
  refusePositionals,
  valueOption,
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
  valueOption(
    { long: 'lock', value: 'PATH', help: 'Lock file shared with sd-nspawn for the nftables table' },
    (v, a) => {
      v.lock = a;
    },
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

export interface ParsedNetworkdVeth {
  values: NetworkdVethValues;
  help: boolean;
  version: boolean;
}

/** Parses sd-networkd-veth's argv; it takes no positional arguments. Throws UsageError. */
export function parseNetworkdVeth(argv: readonly string[]): ParsedNetworkdVeth {
  const values: NetworkdVethValues = { once: false };
  const p = parseCommandLine(NETWORKD_VETH_OPTIONS, argv, values);
  refusePositionals(p);
  return { values, help: p.help, version: p.version };
}

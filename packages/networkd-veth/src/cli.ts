#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { NetworkdVeth } from './daemon/daemon.js';
import { formatSubnet } from './pool/ipv4.js';

const USAGE = `sd-networkd-veth [OPTIONS...]

Configures every ve-* veth and vz-* bridge of the network namespace as
systemd-networkd's 80-container-ve.network and 80-container-vz.network do:
an address from the pool (/28 for ve-, /24 for vz-), the link up, IPv4
forwarding and masquerading. Runs until SIGTERM, configuring new links as
they appear.

  -h --help        Show this help
     --version     Show the package version
     --once        Configure the links there are now, then exit
     --lock=PATH   Lock file shared with sd-nspawn for the nftables table
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    name: string;
    version: string;
  };
  return `${pkg.name} ${pkg.version}`;
}

async function main(): Promise<number> {
  let values: { help?: boolean; version?: boolean; once?: boolean; lock?: string };
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
        once: { type: 'boolean' },
        lock: { type: 'string' },
      },
    }));
  } catch (e) {
    process.stderr.write(`sd-networkd-veth: ${(e as Error).message}\n`);
    return 1;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const d = new NetworkdVeth(
    {
      configured: (c) =>
        process.stdout.write(`${c.name}: ${c.hostAddress}/${c.prefixLength} (${formatSubnet(c.subnet)})\n`),
      lease: (link, address, mac) => process.stdout.write(`${link}: lease ${address} to ${mac}\n`),
      error: (link, e) => process.stderr.write(`sd-networkd-veth: ${link}: ${e.message}\n`),
    },
    values.lock !== undefined ? { lockPath: values.lock } : {},
  );
  // Subscribed before the first enumeration: no link made in between is missed.
  if (!values.once) d.watch();
  await d.configureAll();
  if (values.once) {
    await d.close();
    return 0;
  }
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await d.close();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`sd-networkd-veth: ${(e as Error).message}\n`);
    process.exitCode = 1;
  },
);

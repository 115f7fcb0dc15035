#!/usr/bin/env node
import { answerHelpOrVersion, packageVersion, runMain } from '@sd/basic';
import { NETWORKD_VETH_HELP, parseNetworkdVeth } from './cli-options.js';
import { NetworkdVeth } from './daemon/daemon.js';
import { formatSubnet } from './pool/ipv4.js';

// sd-networkd-veth: parse, configure, watch until SIGTERM/SIGINT — the only place that prints or exits.

async function main(argv: string[]): Promise<number> {
  const p = parseNetworkdVeth(argv);
  const { values } = p;
  if (answerHelpOrVersion(p, NETWORKD_VETH_HELP, packageVersion(import.meta.url, 'sd-networkd-veth')))
    return 0;
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

runMain('sd-networkd-veth', main);

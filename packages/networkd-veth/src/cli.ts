#!/usr/bin/env node
import { runCli } from './cli-common.js';

runCli({
  name: 'sd-networkd-veth',
  summary: 'configure container links: veth and bridges, addresses, DHCP, masquerade',
  usage: ['sd-networkd-veth [OPTIONS...]'],
});

#!/usr/bin/env node
import { runCli } from './cli-common.js';

runCli({
  name: 'sd-machined',
  summary: 'the machine registry and image pool daemon (org.freedesktop.machine1)',
  usage: ['sd-machined [OPTIONS...]'],
});

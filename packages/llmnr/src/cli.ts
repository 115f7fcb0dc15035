#!/usr/bin/env node
import { runCli } from './cli-common.js';

runCli({
  name: 'sd-llmnr',
  summary: 'LLMNR (RFC 4795) responder and resolver',
  usage: ['sd-llmnr [OPTIONS...]', 'sd-llmnr query NAME'],
});

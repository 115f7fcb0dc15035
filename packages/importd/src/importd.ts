#!/usr/bin/env node
import { runCli } from './cli-common.js';

runCli({
  name: 'sd-importd',
  summary: 'the image transfer daemon (org.freedesktop.import1)',
  usage: ['sd-importd [OPTIONS...]'],
});

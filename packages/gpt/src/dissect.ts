#!/usr/bin/env node
import { runCli } from './cli-common.js';

runCli({
  name: 'sd-dissect',
  summary:
    'inspect and mount disk images (GPT, MBR, bare file systems) per the Discoverable Partitions Specification',
  usage: ['sd-dissect [OPTIONS...] IMAGE', 'sd-dissect --mount IMAGE PATH', 'sd-dissect --umount PATH'],
});

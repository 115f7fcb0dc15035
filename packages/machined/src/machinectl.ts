#!/usr/bin/env node
import { runCli } from './cli-common.js';

runCli({
  name: 'machinectl',
  summary: 'control the machine registry and the image pool',
  usage: [
    'machinectl [OPTIONS...] COMMAND ...',
    'machinectl list | status NAME | shell NAME | list-images | clone NAME NEW',
  ],
});
